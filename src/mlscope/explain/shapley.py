"""Interventional Shapley values of a model's positive-class probability over its raw features.

v_x(S) = mean over background rows b of f(x on S, b elsewhere); phi_i = sum over S not holding i of
|S|! (M-|S|-1)! / M! * (v_x(S + i) - v_x(S)).

Exact (M <= 12): every coalition is enumerated. Work is cut without changing a number:
- each feature is coded as small integers over the values that occur (rows + background);
- per coalition, only distinct row parts x_S and distinct background parts b_notS are combined
  (the background part weighted by how often it occurs);
- across all coalitions and rows, each distinct hybrid row is evaluated once, in one batch;
- for mlscope's per-feature pipelines, only the final estimator runs (see model_eval.py).
Approximate (M > 12): antithetic permutation sampling; efficiency (base + sum phi = f(x)) still holds
exactly, the values carry sampling error. The output says which."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlscope.explain.model_eval import (
    BlockEvaluator,
    Codebook,
    RawEvaluator,
    block_layout,
    positive_class_index,
)

MAX_EXACT_FEATURES = 12
DEFAULT_BACKGROUND = 100
DEFAULT_SEED = 42
DEFAULT_PERMUTATIONS = 64
_KEY_LIMIT = 2**62


@dataclass
class Explanation:
    """Shapley values for rows: values[r, j] is feature j's contribution to row r's probability."""

    features: list[str]
    values: np.ndarray
    base_value: float
    outputs: np.ndarray
    data: pd.DataFrame
    row_ids: list[Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    standard_errors: np.ndarray | None = None

    @property
    def additivity_errors(self) -> np.ndarray:
        return np.abs(self.base_value + self.values.sum(axis=1) - self.outputs)


def sample_background(frame: pd.DataFrame, size: int = DEFAULT_BACKGROUND, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """A fixed-seed sample of (at most) `size` rows."""
    if len(frame) <= size:
        return frame.copy()
    return frame.sample(n=size, random_state=seed)


@functools.cache
def shapley_weights(m: int) -> np.ndarray:
    """W (2^m x m) with phi = V @ W for V[:, mask] = v(coalition mask)."""
    weights = np.zeros((1 << m, m))
    factor = [math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)]
    for mask in range(1 << m):
        size = mask.bit_count()
        for i in range(m):
            if mask >> i & 1:
                weights[mask, i] += factor[size - 1]
            else:
                weights[mask, i] -= factor[size]
    return weights


def _probability_fn(model: Any) -> Callable[[pd.DataFrame], np.ndarray]:
    if hasattr(model, "predict_proba"):
        positive = positive_class_index(model)
        return lambda frame: np.asarray(model.predict_proba(frame))[:, positive]
    return lambda frame: np.asarray(model.predict(frame), dtype=float).reshape(len(frame), -1)[:, -1]


class ShapleyExplainer:
    """Explain `model` (a fitted classifier or anything with predict_proba) over `features`."""

    def __init__(self, model: Any, background: pd.DataFrame, *, features: list[str] | None = None,
                 background_seed: int | None = DEFAULT_SEED, max_exact_features: int = MAX_EXACT_FEATURES,
                 permutations: int = DEFAULT_PERMUTATIONS, fast_path: bool = True) -> None:
        self.model = model
        self.features = list(features or background.columns)
        self.background = background[self.features].reset_index(drop=True)
        self.background_seed = background_seed
        self.max_exact_features = max_exact_features
        self.permutations = permutations
        self.fast_path = fast_path
        # Everything that depends only on the background is prepared once and reused by explain().
        self._codebook = Codebook([self.background], self.features)
        self._b_codes = self._codebook.encode(self.background)
        layout = block_layout(model, self.features) if fast_path else None
        self._evaluator: RawEvaluator | BlockEvaluator = (
            BlockEvaluator(self._codebook, model, layout) if layout is not None
            else RawEvaluator(self._codebook, _probability_fn(model)))
        self._background_parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._b_radix = _radix(self._codebook.cardinalities)

    def _background_part(self, mask: int, outside: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Distinct background rows restricted to `outside` (as codes) and how often each occurs."""
        if mask not in self._background_parts:
            if not outside:
                part, counts = np.zeros((1, 0), dtype=np.int64), np.array([len(self._b_codes)])
            elif self._b_radix is not None:
                keys = self._b_codes[:, outside] @ self._b_radix[outside]
                _, first, counts = np.unique(keys, return_index=True, return_counts=True)
                part = self._b_codes[first][:, outside]
            else:
                part, counts = np.unique(self._b_codes[:, outside], axis=0, return_counts=True)
            self._background_parts[mask] = (part, counts)
        return self._background_parts[mask]

    @functools.cached_property
    def _one_row_layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every coalition's distinct background parts stacked once: (codes with the coalition's own
        columns zeroed, which columns the row fills in, coalition id, weight)."""
        m = len(self.features)
        parts, inside, owners, counts = [], [], [], []
        for mask in range(1 << m):
            outside = [j for j in range(m) if not mask >> j & 1]
            part, count = self._background_part(mask, outside)
            full = np.zeros((len(part), m), dtype=np.int64)
            full[:, outside] = part
            parts.append(full)
            inside.append(np.tile([bool(mask >> j & 1) for j in range(m)], (len(part), 1)))
            owners.append(np.full(len(part), mask))
            counts.append(count)
        return np.vstack(parts), np.vstack(inside), np.concatenate(owners), np.concatenate(counts).astype(float)

    def _exact_one_row(self, x_codes: np.ndarray, cardinalities: np.ndarray,
                       evaluate: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, float, np.ndarray, int]:
        """`_exact` for a single row (the what-if case), without a Python loop over coalitions."""
        parts, inside, owners, counts = self._one_row_layout
        m = len(self.features)
        hybrid = np.where(inside, x_codes[0][None, :], parts)
        radix = _radix(cardinalities)
        if radix is not None:
            keys, inverse = np.unique(hybrid @ radix, return_inverse=True)
            distinct = (keys[:, None] // radix[None, :]) % cardinalities[None, :]
        else:
            distinct, inverse = np.unique(hybrid, axis=0, return_inverse=True)
        f = evaluate(distinct)[inverse.ravel()]
        V = (np.bincount(owners, weights=f * counts, minlength=1 << m) / len(self._b_codes))[None, :]
        return V @ shapley_weights(m), float(V[0, 0]), V[:, (1 << m) - 1].copy(), len(distinct)

    def explain(self, rows: pd.DataFrame, row_ids: list[Any] | None = None) -> Explanation:
        started = time.perf_counter()
        rows = rows[self.features].reset_index(drop=True)
        codebook = self._codebook.extend(rows)
        evaluate = self._evaluator.extended(codebook)
        x_codes, b_codes = codebook.encode(rows), self._b_codes
        m = len(self.features)
        exact = m <= self.max_exact_features
        if exact and len(rows) == 1:
            values, base, outputs, evaluations = self._exact_one_row(x_codes, codebook.cardinalities, evaluate)
        elif exact:
            values, base, outputs, evaluations = _exact(x_codes, codebook.cardinalities, self._background_part,
                                                        evaluate)
        if exact:
            algorithm = "exact enumeration of all coalitions (interventional)"
        else:
            values, base, outputs, evaluations = _permutation_sampling(
                x_codes, b_codes, evaluate, self.permutations, self.background_seed or 0)
            algorithm = f"antithetic permutation sampling, {self.permutations} permutations (interventional)"
        explanation = Explanation(
            features=self.features, values=values, base_value=base, outputs=outputs, data=rows,
            row_ids=list(row_ids) if row_ids is not None else list(range(len(rows))),
        )
        explanation.metadata = {
            "algorithm": algorithm,
            "exact": exact,
            "evaluator": evaluate.name,
            "model_output": "probability of class 1",
            "background_size": len(self.background),
            "background_seed": self.background_seed,
            "rows": len(rows),
            "model_evaluations": int(evaluations),
            "max_additivity_error": float(explanation.additivity_errors.max()) if len(rows) else 0.0,
            "seconds": time.perf_counter() - started,
        }
        return explanation


def _radix(cardinalities: np.ndarray) -> np.ndarray | None:
    if float(np.prod(cardinalities.astype(float))) >= _KEY_LIMIT:
        return None
    return np.concatenate([[1], np.cumprod(cardinalities[:-1])]).astype(np.int64)


def _unique_rows(codes: np.ndarray, radix: np.ndarray | None, columns: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct rows as keys or code rows, inverse, counts) of codes restricted to `columns`."""
    if not columns:
        return np.zeros(1, dtype=np.int64), np.zeros(len(codes), dtype=np.int64), np.array([len(codes)])
    part = codes[:, columns]
    if radix is not None:
        keys = part @ radix[columns]
        uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        return uniq, inverse.ravel(), counts
    uniq, inverse, counts = np.unique(part, axis=0, return_inverse=True, return_counts=True)
    return uniq, inverse.ravel(), counts


def _exact(x_codes: np.ndarray, cardinalities: np.ndarray,
           background_part: Callable[[int, list[int]], tuple[np.ndarray, np.ndarray]],
           evaluate: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, float, np.ndarray, int]:
    n, m = x_codes.shape
    full = (1 << m) - 1
    radix = _radix(cardinalities)
    plans = []
    for mask in range(1 << m):
        inside = [j for j in range(m) if mask >> j & 1]
        outside = [j for j in range(m) if not mask >> j & 1]
        ux, inverse_x, _ = _unique_rows(x_codes, radix, inside)
        ub, counts_b = background_part(mask, outside)
        if radix is not None:
            ub = ub @ radix[outside] if outside else np.zeros(1, dtype=np.int64)
        plans.append((inside, outside, ux, inverse_x, ub, counts_b))

    V = np.empty((n, 1 << m))
    if radix is not None:
        # One batch for every distinct hybrid row of every coalition.
        keys = np.unique(np.concatenate([(p[2][:, None] + p[4][None, :]).ravel() for p in plans]))
        hybrid_codes = (keys[:, None] // radix[None, :]) % cardinalities[None, :]
        f = evaluate(hybrid_codes)
        evaluations = len(keys)
        for mask, (_, _, ux, inverse_x, ub, counts_b) in enumerate(plans):
            grid = f[np.searchsorted(keys, ux[:, None] + ub[None, :])]
            V[:, mask] = (grid @ counts_b / counts_b.sum())[inverse_x]
    else:
        evaluations = 0
        for mask, (inside, outside, ux, inverse_x, ub, counts_b) in enumerate(plans):
            hybrid = np.empty((len(ux) * len(ub), m), dtype=np.int64)
            hybrid[:, inside] = np.repeat(ux, len(ub), axis=0) if inside else 0
            hybrid[:, outside] = np.tile(ub, (len(ux), 1)) if outside else 0
            grid = evaluate(hybrid).reshape(len(ux), len(ub))
            evaluations += len(hybrid)
            V[:, mask] = (grid @ counts_b / counts_b.sum())[inverse_x]
    values = V @ shapley_weights(m)
    return values, float(V[0, 0]), V[:, full].copy(), evaluations


def _permutation_sampling(x_codes: np.ndarray, b_codes: np.ndarray, evaluate: Callable[[np.ndarray], np.ndarray],
                          permutations: int, seed: int) -> tuple[np.ndarray, float, np.ndarray, int]:
    """Each permutation adds features one by one; a feature's marginal change is credited to it.
    Half the permutations are the reverse of the other half (antithetic), reducing variance."""
    n, m = x_codes.shape
    k = len(b_codes)
    rng = np.random.default_rng(seed)
    orders = []
    for _ in range(max(1, permutations // 2)):
        order = rng.permutation(m)
        orders += [order, order[::-1]]
    values = np.zeros((n, m))
    base = float(evaluate(b_codes).mean())
    outputs = evaluate(x_codes)
    evaluations = k + n
    for order in orders:
        hybrid = np.repeat(b_codes[None, :, :], n, axis=0)  # (n, k, m): start from the background
        previous = np.full(n, base)
        for step, feature in enumerate(order):
            hybrid[:, :, feature] = x_codes[:, feature][:, None]
            if step == m - 1:
                current = outputs
            else:
                current = evaluate(hybrid.reshape(n * k, m)).reshape(n, k).mean(axis=1)
                evaluations += n * k
            values[:, feature] += current - previous
            previous = current
    return values / len(orders), base, outputs, evaluations


def explain_rows(model: Any, background: pd.DataFrame, background_seed: int | None, rows: pd.DataFrame,
                 row_ids: list[Any] | None = None) -> Explanation:
    """One call for the worker pool: explain `rows` of `model` against `background`."""
    return ShapleyExplainer(model, background, background_seed=background_seed).explain(rows, row_ids)
