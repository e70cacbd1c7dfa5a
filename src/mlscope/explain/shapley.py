"""Interventional Shapley values of a model's positive-class probability over its raw features.

v_x(S) = mean over background rows b of f(x on S, b elsewhere); phi_i = sum over S not holding i of
|S|! (M-|S|-1)! / M! * (v_x(S + i) - v_x(S)).

Exact (M <= 12): every coalition is enumerated. Work is cut without changing a number:
- each feature is coded as small integers over the values that occur (rows + background);
- per coalition, only distinct row parts x_S and distinct background parts b_notS are combined
  (the background part weighted by how often it occurs);
- across all coalitions and rows, each distinct hybrid row is evaluated once, in one batch;
- for mlscope's per-feature pipelines, only the final estimator runs (see model_eval.py).
Closed forms, exact at any width (`tree_path`, `linear`): tree ensembles (forests, boosting, XGBoost,
LightGBM) walk their trees per (row, background row) pair; linear models need one matrix product.

Which path explains a model (`ShapleyExplainer.path`), and which output it explains:
1. a tree ensemble whose raw output is the probability (forests of classifiers) or the prediction
   (regressors), or a linear regressor: its closed form, exact at any width;
2. at most 12 raw features: enumeration of the probability (the prediction for regressors), exact;
3. above 12, a boosted or linear classifier: its closed form in its additive space (log-odds or the
   decision function), exact, since the probability is not additive over trees or coefficients;
   `output="probability"` asks for the probability instead, which then is sampled;
4. anything else above 12: sampling with a standard error per value (`sampling.py`) until the largest
   is below a tolerance or a budget runs out. Efficiency (base + sum phi = f(x)) holds exactly either way.
The metadata says which path, which output, and "exact" or not; sampled values carry standard errors."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlscope.explain import sampling
from mlscope.explain.linear import LinearPath, NotLinear
from mlscope.explain.model_eval import (
    BlockEvaluator,
    Codebook,
    RawEvaluator,
    block_layout,
    class_index,
    positive_class_index,
)
from mlscope.explain.tree_models import LOG_ODDS, PREDICTION, PROBABILITY, UnsupportedTrees
from mlscope.explain.tree_path import TreePath

MAX_EXACT_FEATURES = 12
DEFAULT_BACKGROUND = 100
DEFAULT_SEED = 42
_KEY_LIMIT = 2**62
AUTO, PROBABILITY_OUTPUT = "auto", "probability"
TREE, LINEAR, ENUMERATION, SAMPLING = "tree", "linear", "enumeration", "sampling"


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


def output_like(metadata: dict[str, Any]) -> str:
    """The `output` argument that explains what a stored explanation explained (a what-if row or an API
    answer must add up to the same quantity as the stored values it is shown next to)."""
    return PROBABILITY_OUTPUT if str(metadata.get("model_output", "probability")).startswith("probability") else AUTO


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


def _probability_fn(model: Any, column: int) -> Callable[[pd.DataFrame], np.ndarray]:
    if hasattr(model, "predict_proba"):
        return lambda frame: np.asarray(model.predict_proba(frame))[:, column]
    return lambda frame: np.asarray(model.predict(frame), dtype=float).reshape(len(frame), -1)[:, -1]


class ShapleyExplainer:
    """Explain `model` (any fitted classifier or regressor) over its raw `features` against `background`.

    `output`: "auto" (the probability, or the prediction, whenever it can be explained exactly; else the
    model's additive output exactly; see the module docstring) or "probability" (always the
    probability, sampled with standard errors when it cannot be exact). `closed_forms=False` keeps the
    model-agnostic paths (enumeration, sampling) only; `fast_path=False` also evaluates the hybrids through
    the whole model (both are for tests and benchmarks: the numbers agree). Sampling stops at `tolerance`
    (largest standard error) or at `max_evaluations` / `max_seconds`."""

    def __init__(self, model: Any, background: pd.DataFrame, *, features: list[str] | None = None,
                 background_seed: int | None = DEFAULT_SEED, max_exact_features: int = MAX_EXACT_FEATURES,
                 fast_path: bool = True, closed_forms: bool = True, output: str = AUTO,
                 tolerance: float = sampling.DEFAULT_TOLERANCE, max_evaluations: int = sampling.DEFAULT_MAX_EVALUATIONS,
                 max_seconds: float = sampling.DEFAULT_MAX_SECONDS, output_class: Any = None) -> None:
        if output not in (AUTO, PROBABILITY_OUTPUT):
            raise ValueError(f"output must be '{AUTO}' or '{PROBABILITY_OUTPUT}', not {output!r}")
        self.model = model
        self.features = list(features or background.columns)
        self.background = background[self.features].reset_index(drop=True)
        self.background_seed = background_seed
        self.max_exact_features = max_exact_features
        self.fast_path, self.closed_forms = fast_path, closed_forms and fast_path
        self.tolerance, self.max_evaluations, self.max_seconds = tolerance, max_evaluations, max_seconds
        self.estimator = model.steps[-1][1] if hasattr(model, "steps") else model
        # which class's output is explained (a multiclass model has one per class); None: the positive class
        self.classes = getattr(self.estimator, "classes_", None)
        self.column = class_index(self.estimator, output_class) if hasattr(self.estimator, "predict_proba") else 0
        self.closed_form: TreePath | LinearPath | None = None
        self.path, self.why = self._choose_path(output)
        if self.path in (ENUMERATION, SAMPLING):
            # Everything that depends only on the background is prepared once and reused by explain().
            self._codebook = Codebook([self.background], self.features)
            self._b_codes = self._codebook.encode(self.background)
            layout = block_layout(model, self.features) if fast_path else None
            self._evaluator: RawEvaluator | BlockEvaluator = (
                BlockEvaluator(self._codebook, model, layout, column=self.column) if layout is not None
                else RawEvaluator(self._codebook, _probability_fn(model, self.column)))
            self._background_parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            self._b_radix = _radix(self._codebook.cardinalities)

    def _choose_path(self, output: str) -> tuple[str, str]:
        """(path, why it applies): see the module docstring for the order."""
        m = len(self.features)
        reasons = []
        if self.closed_forms:
            for build, refusal in ((TreePath.build, UnsupportedTrees), (LinearPath.build, NotLinear)):
                try:
                    self.closed_form = build(self.model, self.features, self.background)
                    break
                except refusal as exc:
                    reasons.append(str(exc))
        kind = (self.closed_form.ensemble.output if isinstance(self.closed_form, TreePath)
                else getattr(self.closed_form, "output", None))
        name = TREE if isinstance(self.closed_form, TreePath) else LINEAR
        if kind in (PROBABILITY, PREDICTION):
            return name, f"{kind} is additive over the model's parts: closed form, exact at any width"
        if m <= self.max_exact_features:
            self.closed_form = None
            return ENUMERATION, f"{m} raw features (<= {self.max_exact_features}): every coalition enumerated"
        if self.closed_form is not None and output == AUTO:
            return name, (f"{m} raw features: the probability cannot be explained exactly, its {kind} can "
                          f"(closed form)")
        self.closed_form = None
        refused = f" (no closed form: {reasons[0]})" if reasons and output == AUTO else ""
        return SAMPLING, f"{m} raw features (> {self.max_exact_features}){refused}: sampled, with standard errors"

    def _closed_form_values(self, rows: pd.DataFrame) -> tuple[np.ndarray, float, np.ndarray, str]:
        """(values (n, M), base, outputs (n,), what they explain) of the chosen output column."""
        form = self.closed_form
        assert form is not None
        if isinstance(form, TreePath):
            result = form.explain(rows)
            values, base, outputs, names = result.values, result.base, result.outputs, result.output_names
            kind = result.output
        else:
            values, base, outputs, names = form.explain(rows)
            kind = form.output
        classes = self.classes
        column = self.column if values.shape[2] > 1 and classes is not None else 0
        if values.shape[2] == 1 and classes is not None and len(classes) == 2 and self.column != \
                positive_class_index(self.estimator):
            # one output for two classes is the positive class's: the other class's is its negation
            values, base, outputs = -values, -np.asarray(base), -outputs if kind != PROBABILITY else 1 - outputs
            if kind == PROBABILITY:
                base = 1 + base
        if kind == PREDICTION:
            what = "prediction"
        elif classes is not None and kind == LOG_ODDS and len(classes) > 2:
            what = f"softmax logit of class {classes[self.column]}"  # a multinomial model's margin, not log-odds
        elif classes is not None:
            what = f"{kind} of class {classes[self.column]}"
        else:
            what = names[column]
        return values[:, :, column], float(base[column]), outputs[:, column].copy(), what

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

    def _default_output(self) -> str:
        if not hasattr(self.estimator, "predict_proba"):
            return "prediction"
        return f"probability of class {getattr(self.estimator, 'classes_', [0, 1])[self.column]}"

    def explain(self, rows: pd.DataFrame, row_ids: list[Any] | None = None) -> Explanation:
        started = time.perf_counter()
        rows = rows[self.features].reset_index(drop=True)
        standard_errors = None
        details: dict[str, Any] = {}
        if self.path in (TREE, LINEAR):
            values, base, outputs, what = self._closed_form_values(rows)
            evaluations, evaluator = 0, f"{self.path} closed form"
            algorithm = ("exact interventional TreeSHAP over raw features (every tree walked per background row)"
                         if self.path == TREE else "exact closed form of a linear model (interventional)")
            exact = True
        else:
            codebook = self._codebook.extend(rows)
            evaluate = self._evaluator.extended(codebook)
            x_codes = codebook.encode(rows)
            what, evaluator = self._default_output(), evaluate.name
            if self.path == ENUMERATION and len(rows) == 1:
                values, base, outputs, evaluations = self._exact_one_row(x_codes, codebook.cardinalities, evaluate)
            elif self.path == ENUMERATION:
                values, base, outputs, evaluations = _exact(x_codes, codebook.cardinalities, self._background_part,
                                                            evaluate)
            if self.path == ENUMERATION:
                algorithm, exact = "exact enumeration of all coalitions (interventional)", True
            else:
                sampled = sampling.sample_shapley(
                    x_codes, self._b_codes, evaluate, tolerance=self.tolerance, max_evaluations=self.max_evaluations,
                    max_seconds=self.max_seconds, seed=self.background_seed or 0)
                values, base, outputs, evaluations = sampled.values, sampled.base, sampled.outputs, sampled.evaluations
                standard_errors, exact = sampled.standard_errors, False
                algorithm = (f"stratified antithetic permutation sampling, {sampled.permutations:,} permutations "
                             f"(interventional)")
                details = {"converged": sampled.converged, "stop_reason": sampled.stop_reason,
                           "tolerance": self.tolerance,
                           "max_standard_error": float(standard_errors.max()) if standard_errors.size else 0.0}
        explanation = Explanation(
            features=self.features, values=values, base_value=base, outputs=outputs, data=rows,
            row_ids=list(row_ids) if row_ids is not None else list(range(len(rows))),
            standard_errors=standard_errors,
        )
        explanation.metadata = {
            "algorithm": algorithm,
            "exact": exact,
            "path": self.path,
            "why": self.why,
            "evaluator": evaluator,
            "model_output": what,
            "background_size": len(self.background),
            "background_seed": self.background_seed,
            "rows": len(rows),
            "model_evaluations": int(evaluations),
            **details,
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


def explain_rows(model: Any, background: pd.DataFrame, background_seed: int | None, rows: pd.DataFrame,
                 row_ids: list[Any] | None = None, output_class: Any = None) -> Explanation:
    """One call for the worker pool: explain `rows` of `model` against `background` (one class's
    probability of a multiclass model when `output_class` is given)."""
    return ShapleyExplainer(model, background, background_seed=background_seed, output_class=output_class
                            ).explain(rows, row_ids)
