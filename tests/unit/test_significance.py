"""The paired tests of `mlscope.stats.significance` against independent references (scipy, sklearn, loops)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from mlscope.stats import significance as sig
from mlscope.stats.two_runs import num, pval, verdict_clause

# ---------------------------------------------------------------- Nadeau–Bengio

FOLDS_A = [0.861, 0.842, 0.879, 0.855, 0.868]
FOLDS_B = [0.850, 0.846, 0.861, 0.840, 0.862]


def literal_nadeau_bengio(a: list[float], b: list[float], ratio: float) -> tuple[float, float, float, float]:
    """Term by term, with plain Python loops: (mean, t, p, CI half width)."""
    k = len(a)
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(d) / k
    var = sum((x - mean) ** 2 for x in d) / (k - 1)
    se = math.sqrt((1 / k + ratio) * var)
    t = mean / se
    p = 2 * (1 - stats.t.cdf(abs(t), k - 1))
    return mean, t, p, stats.t.ppf(0.975, k - 1) * se


def test_corrected_t_test_equals_a_literal_computation() -> None:
    result = sig.corrected_t_test(FOLDS_A, FOLDS_B, 1 / 4)
    mean, t, p, half = literal_nadeau_bengio(FOLDS_A, FOLDS_B, 1 / 4)
    assert result.estimate == pytest.approx(mean, abs=1e-15) and result.df == 4 and result.k == 5
    assert result.t == pytest.approx(t, rel=1e-12) and result.p_value == pytest.approx(p, rel=1e-9)
    assert (result.ci_low, result.ci_high) == pytest.approx((mean - half, mean + half), rel=1e-12)
    assert not result.degenerate and len(result.differences) == 5


def test_the_correction_widens_the_naive_paired_t_test() -> None:
    naive = stats.ttest_rel(FOLDS_A, FOLDS_B)
    corrected = sig.corrected_t_test(FOLDS_A, FOLDS_B, 1 / 4)
    uncorrected = sig.corrected_t_test(FOLDS_A, FOLDS_B, 0.0)
    assert uncorrected.t == pytest.approx(naive.statistic) and uncorrected.p_value == pytest.approx(naive.pvalue)
    assert corrected.p_value > naive.pvalue
    # t scales by sqrt((1/k) / (1/k + 1/(k-1))) = sqrt(4/9) for k = 5
    assert corrected.t == pytest.approx(naive.statistic * math.sqrt(4 / 9))


def test_corrected_t_test_ci_and_p_agree() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        a, b = rng.normal(0.8, 0.02, 10), rng.normal(0.8, 0.02, 10)
        result = sig.corrected_t_test(a, b, 1 / 9)
        assert (result.ci_low > 0 or result.ci_high < 0) == (result.p_value < 0.05)


def test_identical_folds_mean_no_difference() -> None:
    result = sig.corrected_t_test(FOLDS_A, FOLDS_A, 1 / 4)
    assert result.estimate == 0 and result.p_value == 1.0 and result.t == 0.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0) and not result.degenerate


def test_a_constant_non_zero_difference_is_degenerate_not_p_zero() -> None:
    result = sig.corrected_t_test([0.9, 0.8, 0.7], [0.88, 0.78, 0.68], 1 / 2)
    assert result.degenerate and result.p_value is None and result.t is None
    assert result.estimate == pytest.approx(0.02)


@pytest.mark.parametrize(("a", "b"), [([0.9], [0.8]), ([0.9, float("nan")], [0.8, 0.7]), ([0.9, 0.8], [0.8])])
def test_corrected_t_test_rejects_unusable_folds(a: list[float], b: list[float]) -> None:
    with pytest.raises(ValueError):
        sig.corrected_t_test(a, b, 1.0)


# ---------------------------------------------------------------- McNemar

def paired_labels(b: int, c: int, both_right: int = 40, both_wrong: int = 7) -> tuple[np.ndarray, ...]:
    """Rows where only A is right (b), only B is right (c), both right, both wrong; y is all 1."""
    pred_a = [1] * b + [0] * c + [1] * both_right + [0] * both_wrong
    pred_b = [0] * b + [1] * c + [1] * both_right + [0] * both_wrong
    return np.ones(len(pred_a), dtype=int), np.array(pred_a), np.array(pred_b)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (3, 9), (9, 3), (0, 12), (12, 12), (5, 19), (2, 22)])
def test_exact_mcnemar_equals_scipy_binomtest(b: int, c: int) -> None:
    result = sig.mcnemar(*paired_labels(b, c))
    assert (result.b, result.c, result.method, result.statistic) == (b, c, "exact", None)
    expected = 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("b", "c"), [(30, 12), (12, 30), (13, 12), (100, 60)])
def test_chi_square_mcnemar_equals_a_hand_computation(b: int, c: int) -> None:
    result = sig.mcnemar(*paired_labels(b, c))
    chi2 = (abs(b - c) - 1) ** 2 / (b + c)
    assert result.method == "chi2" and result.statistic == pytest.approx(chi2)
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(chi2 / 2)), rel=1e-10)  # chi-square, 1 df


def test_mcnemar_switches_to_chi_square_at_25_discordant_rows() -> None:
    assert sig.mcnemar(*paired_labels(20, 4)).method == "exact"
    assert sig.mcnemar(*paired_labels(20, 5)).method == "chi2"


def test_mcnemar_reports_both_accuracies() -> None:
    y, a, b = paired_labels(6, 2, both_right=30, both_wrong=2)
    result = sig.mcnemar(y, a, b)
    assert result.n == 40 and result.accuracy_a == 36 / 40 and result.accuracy_b == 32 / 40
    assert result.estimate == pytest.approx(0.1)


def test_mcnemar_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValueError):
        sig.mcnemar([1, 0], [1, 0], [1])


# ---------------------------------------------------------------- paired bootstrap of the AUC difference

def synthetic(n: int, seed: int, separation_a: float, separation_b: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    return y, rng.normal(size=n) + separation_a * y, rng.normal(size=n) + separation_b * y


def literal_bootstrap(y: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The same resamples, one at a time through sklearn."""
    rows = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    out = []
    for pick in rows:
        if len(np.unique(y[pick])) == 2:
            out.append(roc_auc_score(y[pick], a[pick]) - roc_auc_score(y[pick], b[pick]))
    return np.array(out)


def test_observed_difference_equals_sklearn_with_ties() -> None:
    y, a, b = synthetic(180, 0, 1.0, 0.6)
    a = np.round(a, 1)  # plenty of tied scores
    result = sig.bootstrap_auc_difference(y, a, b)
    assert result.auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert result.auc_b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert result.estimate == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)


def test_bootstrap_interval_equals_a_literal_loop() -> None:
    y, a, b = synthetic(60, 1, 1.0, 0.8)
    a = np.round(a, 1)
    result = sig.bootstrap_auc_difference(y, a, b, resamples=300, seed=7)
    reference = literal_bootstrap(y, a, b, 300, 7)
    assert result.used == len(reference)
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(np.quantile(reference, [0.025, 0.975])), abs=1e-12)
    smaller_tail = min(np.sum(reference <= 0), np.sum(reference >= 0))
    assert result.p_value == pytest.approx(min(1.0, 2 * (smaller_tail + 1) / (len(reference) + 1)))


def test_identical_models_are_not_significant() -> None:
    y, a, _ = synthetic(180, 2, 1.0, 1.0)
    result = sig.bootstrap_auc_difference(y, a, a.copy())
    assert result.estimate == 0 and result.ci_low <= 0 <= result.ci_high and result.p_value == 1.0


def test_two_equally_good_models_are_not_significant() -> None:
    y, a, b = synthetic(180, 4, 1.0, 1.0)
    result = sig.bootstrap_auc_difference(y, a, b)
    assert result.ci_low < 0 < result.ci_high and result.p_value > 0.05


def test_a_much_better_model_is_significant() -> None:
    y, a, b = synthetic(180, 5, 2.5, 0.3)
    result = sig.bootstrap_auc_difference(y, a, b)
    assert result.estimate > 0.2 and result.ci_low > 0 and result.p_value < 0.01
    flipped = sig.bootstrap_auc_difference(y, b, a)
    assert flipped.estimate == pytest.approx(-result.estimate) and flipped.ci_high < 0
    assert (flipped.ci_low, flipped.ci_high) == pytest.approx((-result.ci_high, -result.ci_low))


def test_resamples_with_one_class_are_skipped() -> None:
    y = np.array([1, 0, 0, 0, 0])
    result = sig.bootstrap_auc_difference(y, np.array([0.9, 0.1, 0.2, 0.3, 0.95]), np.linspace(0, 1, 5), seed=1)
    assert 0 < result.used < result.resamples == 2000
    assert (1 - 0.8 ** 5) * 2000 * 0.9 < result.used < (1 - 0.8 ** 5) * 2000 * 1.1  # P(the positive is drawn)
    assert math.isfinite(result.ci_low) and math.isfinite(result.ci_high)


def test_bootstrap_is_seeded_and_fast() -> None:
    y, a, b = synthetic(180, 6, 1.0, 0.7)
    sig.bootstrap_auc_difference(y, a, b, resamples=10)  # warm-up
    started = time.perf_counter()
    first = sig.bootstrap_auc_difference(y, a, b, resamples=2000, seed=3)
    assert time.perf_counter() - started < 0.5
    assert first == sig.bootstrap_auc_difference(y, a, b, resamples=2000, seed=3)
    assert first != sig.bootstrap_auc_difference(y, a, b, resamples=2000, seed=4)


def test_large_inputs_are_resampled_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    y, a, b = synthetic(2_000, 8, 1.0, 0.9)
    whole = sig.bootstrap_auc_difference(y, a, b, resamples=500, seed=0)
    monkeypatch.setattr(sig, "_BOOTSTRAP_CELLS", 2_000 * 7)  # 7 resamples per chunk
    chunked = sig.bootstrap_auc_difference(y, a, b, resamples=500, seed=0)
    assert chunked.used == whole.used == 500
    assert (chunked.ci_low, chunked.ci_high) == pytest.approx((whole.ci_low, whole.ci_high), abs=1e-12)


@pytest.mark.parametrize("y", [[1, 1, 1, 1], [0, 1, 2, 1]])
def test_bootstrap_needs_two_classes(y: list[int]) -> None:
    with pytest.raises(ValueError):
        sig.bootstrap_auc_difference(y, [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1])


# ---------------------------------------------------------------- wording

def test_numbers_use_a_real_minus_sign() -> None:
    assert num(-0.0201) == "\u22120.020" and num(0.0174) == "0.017" and num(-0.0001) == "0.000"
    assert pval(0.4123) == "p = 0.41" and pval(0.0004) == "p < 0.001" and pval(1.0) == "p = 1"
    assert pval(0.0496) == "p = 0.0496" and pval(0.0504) == "p = 0.05" and pval(0.05) == "p = 0.05"


def test_the_better_run_is_named_first() -> None:
    text = verdict_clause("svm", "rf", 0.017, -0.02, 0.05, 0.41, "ROC-AUC", True)
    assert text == "svm beats rf on ROC-AUC by 0.017, 95% CI [\u22120.020, 0.050]: not significant (p = 0.41)"
    flipped = verdict_clause("rf", "svm", -0.017, -0.05, 0.02, 0.41, "ROC-AUC", True)
    assert flipped == text  # the same sentence whichever run is A
    loss = verdict_clause("svm", "rf", 0.03, 0.01, 0.05, 0.001, "log loss", False)
    assert loss == "rf beats svm on log loss by 0.030, 95% CI [0.010, 0.050]: significant (p = 0.001)"
    tie = verdict_clause("svm", "rf", 0.0, -0.01, 0.01, 1.0, "ROC-AUC", True)
    assert tie.startswith("svm and rf tie on ROC-AUC (difference 0.000, 95% CI [\u22120.010, 0.010])")
    assert verdict_clause("a", "b", 0.02, None, None, 0.2, "accuracy", True) == \
        "a beats b on accuracy by 0.020: not significant (p = 0.2)"


# ---------------------------------------------------------------- regression and multiclass

def test_paired_error_tests_equal_scipys_paired_t_test() -> None:
    from mlscope.stats.significance import paired_error_test

    rng = np.random.default_rng(3)
    y = rng.normal(150, 50, 120)
    a, b = y + rng.normal(0, 20, 120), y + rng.normal(3, 25, 120)
    for kind, loss in (("squared", np.square), ("absolute", np.abs)):
        result = paired_error_test(y, a, b, kind)
        expected = stats.ttest_rel(loss(y - a), loss(y - b))
        assert result.estimate == pytest.approx(float(np.mean(loss(y - a) - loss(y - b))), abs=1e-9)
        assert result.t == pytest.approx(float(expected.statistic), abs=1e-9)
        assert result.p_value == pytest.approx(float(expected.pvalue), abs=1e-12)
        interval = expected.confidence_interval(0.95)
        assert (result.ci_low, result.ci_high) == (pytest.approx(interval.low, abs=1e-9),
                                                   pytest.approx(interval.high, abs=1e-9))
    same = paired_error_test(y, a, a, "squared")
    assert (same.estimate, same.p_value, same.t) == (0.0, 1.0, None)
    with pytest.raises(ValueError, match="finite"):
        paired_error_test(y, np.full(120, np.nan), b, "squared")


def test_bootstrapped_rmse_and_macro_f1_start_from_scikit_learns_values() -> None:
    from sklearn.metrics import f1_score, mean_squared_error

    from mlscope.stats.significance import bootstrap_difference, macro_f1_statistic, rmse_statistic

    rng = np.random.default_rng(5)
    y = rng.normal(0, 1, 300)
    a, b = y + rng.normal(0, 0.5, 300), y + rng.normal(0, 0.8, 300)
    result = bootstrap_difference(rmse_statistic(y, a), rmse_statistic(y, b), len(y), resamples=1000, seed=1)
    assert result.value_a == pytest.approx(np.sqrt(mean_squared_error(y, a)), abs=1e-12)
    assert result.estimate == pytest.approx(result.value_a - result.value_b, abs=1e-15)
    assert result.ci_low < result.estimate < result.ci_high < 0 and result.p_value < 0.01  # a is clearly better
    tie = bootstrap_difference(rmse_statistic(y, a), rmse_statistic(y, a), len(y), resamples=200)
    assert (tie.estimate, tie.ci_low, tie.ci_high, tie.p_value) == (0.0, 0.0, 0.0, 1.0)

    labels = np.array(["red", "white", "rose"], dtype=object)
    truth = labels[rng.integers(0, 3, 200)]
    noisy = np.where(rng.random(200) < 0.7, truth, labels[rng.integers(0, 3, 200)])
    statistic = macro_f1_statistic(truth, noisy, labels)
    assert statistic(np.ones((1, 200)))[0] == pytest.approx(
        f1_score(truth, noisy, labels=labels, average="macro", zero_division=0), abs=1e-12)
    counts = np.bincount(rng.integers(0, 200, 200), minlength=200).astype(float)
    resampled = np.repeat(np.arange(200), counts.astype(int))
    assert statistic(counts[None, :])[0] == pytest.approx(
        f1_score(truth[resampled], noisy[resampled], labels=labels, average="macro", zero_division=0), abs=1e-12)
