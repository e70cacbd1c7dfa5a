"""The sampler with error bars against exact enumeration: coverage of its standard errors, its stopping
rule, its budgets and efficiency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from mlscope.errors import BadInput
from mlscope.explain.model_eval import Codebook, RawEvaluator
from mlscope.explain.sampling import sample_shapley
from mlscope.explain.shapley import ShapleyExplainer

M = 8


class Interacting:
    """P(class 1) with pairwise interactions and a threshold: no shortcut gives its Shapley values."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.w = rng.normal(0, 0.6, M)
        self.pairs = rng.normal(0, 0.5, (M, M))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame.to_numpy(dtype=float)
        margin = x @ self.w + np.einsum("ni,ij,nj->n", x, np.triu(self.pairs, 1), x) / 2 + (x[:, 0] > x[:, 1])
        p = expit(margin)
        return np.column_stack([1 - p, p])


def problem(seed: int, n_rows: int = 4, n_background: int = 20):
    """Features with few levels (so x and b often share a code: the sampler skips those steps)."""
    rng = np.random.default_rng(seed)
    columns = [f"f{j}" for j in range(M)]
    data = pd.DataFrame(rng.integers(-2, 3, (n_background + n_rows, M)).astype(float), columns=columns)
    background, rows = data.iloc[:n_background], data.iloc[n_background:]
    model = Interacting(seed)
    codebook = Codebook([background, rows], columns)
    evaluate = RawEvaluator(codebook, lambda frame: model.predict_proba(frame)[:, 1])
    return model, background, rows, codebook.encode(rows), codebook.encode(background), evaluate


def test_standard_errors_cover_the_true_error_at_the_stated_rate() -> None:
    inside, total, largest_ratio = 0, 0, 0.0
    for problem_seed in range(4):
        model, background, rows, x, b, evaluate = problem(problem_seed)
        truth = ShapleyExplainer(model, background).explain(rows).values
        for seed in range(12):
            sampled = sample_shapley(x, b, evaluate, tolerance=0.01, seed=seed)
            error = np.abs(sampled.values - truth)
            inside += int((error <= 2 * sampled.standard_errors).sum())
            total += error.size
            largest_ratio = max(largest_ratio, float((error / np.maximum(sampled.standard_errors, 1e-12)).max()))
    share = inside / total
    # 1,536 values: the share's own sampling error is ~0.6%, so 0.91-0.99 is not flaky at 95% coverage
    assert total == 4 * 12 * 4 * M
    assert 0.91 <= share <= 0.99, share
    assert largest_ratio < 6, largest_ratio


def test_stops_at_the_tolerance_and_keeps_efficiency() -> None:
    _, background, rows, x, b, evaluate = problem(7)
    sampled = sample_shapley(x, b, evaluate, tolerance=0.004, seed=1)
    assert sampled.converged and "tolerance" in sampled.stop_reason
    assert sampled.standard_errors.max() <= 0.004
    assert np.abs(sampled.base + sampled.values.sum(axis=1) - sampled.outputs).max() <= 1e-9
    assert sampled.base == pytest.approx(float(evaluate(b).mean()), abs=1e-15)
    assert np.array_equal(sampled.outputs, evaluate(x))
    tighter = sample_shapley(x, b, evaluate, tolerance=0.002, seed=1)
    assert tighter.standard_errors.max() <= 0.002 and tighter.evaluations > sampled.evaluations


def test_a_spent_evaluation_budget_says_so() -> None:
    _, _, _, x, b, evaluate = problem(8)
    sampled = sample_shapley(x, b, evaluate, tolerance=1e-6, max_evaluations=30_000, seed=0)
    assert not sampled.converged and sampled.stop_reason.startswith("evaluation budget")
    assert sampled.evaluations <= 30_000
    assert sampled.standard_errors.max() > 1e-6
    assert np.abs(sampled.base + sampled.values.sum(axis=1) - sampled.outputs).max() <= 1e-9


def test_a_spent_time_budget_says_so() -> None:
    _, _, _, x, b, evaluate = problem(9)
    sampled = sample_shapley(x, b, evaluate, tolerance=1e-6, max_seconds=0.3, seed=0)
    assert not sampled.converged and sampled.stop_reason.startswith("time budget")


def test_an_additive_model_is_exact_after_one_round() -> None:
    """Per background row every order gives the same values when f is additive: the stratified
    estimator has nothing left to average, and says so with zero standard errors."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=M)
    x, b = rng.integers(0, 5, (3, M)), rng.integers(0, 5, (30, M))
    sampled = sample_shapley(x, b, lambda codes: codes @ w, tolerance=1e-9, seed=0)
    assert sampled.converged and sampled.standard_errors.max() <= 1e-12
    assert np.abs(sampled.values - (x - b.mean(axis=0)) * w).max() <= 1e-12


def test_bad_settings_are_bad_input() -> None:
    _, _, _, x, b, evaluate = problem(1)
    with pytest.raises(BadInput, match="positive"):
        sample_shapley(x, b, evaluate, tolerance=0)
    with pytest.raises(BadInput, match="background"):
        sample_shapley(x, b[:0], evaluate)


def test_decoding_float_codes_gives_the_original_values_and_dtypes() -> None:
    """The sampler's many hybrids are decoded through Codebook.column's typed path for float features;
    it must give what the general (object) path gives, missing values and mixed columns included."""
    background = pd.DataFrame({"fare": [7.25, np.nan, 71.2833], "sibsp": [1, 0, 3], "port": ["S", "C", None]})
    rows = pd.DataFrame({"fare": [8.05], "sibsp": [np.nan], "port": ["Q"]})  # sibsp: int column, NaN in rows
    codebook = Codebook([background], list(background.columns)).extend(rows)
    decoded = codebook.decode(codebook.encode(pd.concat([background, rows], ignore_index=True)))
    assert decoded["fare"].dtype == np.float64
    assert np.array_equal(decoded["fare"].to_numpy(), [7.25, np.nan, 71.2833, 8.05], equal_nan=True)
    assert decoded["sibsp"].tolist()[:3] == [1, 0, 3] and pd.isna(decoded["sibsp"].iloc[3])
    assert decoded["port"].tolist()[:2] == ["S", "C"] and pd.isna(decoded["port"].iloc[2])
    assert decoded["port"].iloc[3] == "Q"
