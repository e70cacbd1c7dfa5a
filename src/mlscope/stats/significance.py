"""Is the difference between two models real? Three paired tests, plain numpy/scipy.

- `corrected_t_test`: Nadeau–Bengio corrected resampled t-test on per-fold CV scores.
- `mcnemar`: McNemar's test on two models' predicted labels for the same test rows.
- `bootstrap_auc_difference`: paired bootstrap of the ROC-AUC difference on the same test rows.
- `paired_error_test`: paired t-test on two regressors' per-row squared or absolute errors.
- `bootstrap_difference`: paired bootstrap of any metric's difference (RMSE, macro F1) on the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

ALPHA = 0.05
# McNemar: exact binomial p below this many discordant rows, chi-square with continuity correction from
# here on. At 25+ discordant pairs the corrected chi-square is within a few thousandths of the exact p,
# and it is the form most readers recognise; below it the approximation is poor.
EXACT_BELOW = 25
_BOOTSTRAP_CELLS = 4_000_000  # resamples x rows held in memory at once


@dataclass(frozen=True)
class FoldTest:
    """Corrected resampled t-test of mean(a - b) over k paired folds."""

    estimate: float
    t: float | None
    df: int
    p_value: float | None
    ci_low: float
    ci_high: float
    k: int
    test_train_ratio: float
    sd_difference: float
    standard_error: float
    differences: tuple[float, ...]
    degenerate: bool  # every fold differs by the same non-zero amount: no variance, no honest p-value


@dataclass(frozen=True)
class McNemar:
    """McNemar's test: b = only A right, c = only B right."""

    b: int
    c: int
    n: int
    accuracy_a: float
    accuracy_b: float
    statistic: float | None  # chi-square (continuity-corrected) when method == "chi2"
    p_value: float
    method: str  # "exact" (binomial) or "chi2"

    @property
    def estimate(self) -> float:
        return self.accuracy_a - self.accuracy_b


@dataclass(frozen=True)
class BootstrapAuc:
    """Paired bootstrap of ROC-AUC(a) - ROC-AUC(b) on the same rows."""

    estimate: float
    auc_a: float
    auc_b: float
    ci_low: float
    ci_high: float
    p_value: float
    resamples: int
    used: int  # resamples with both classes present
    n: int


def corrected_t_test(a: ArrayLike, b: ArrayLike, test_train_ratio: float,
                     confidence: float = 0.95) -> FoldTest:
    """Nadeau & Bengio (2003): the variance of the fold differences inflated by (1/k + n_test/n_train),
    because CV training sets overlap and the folds are not independent. `test_train_ratio` is 1/(k-1)
    for plain k-fold CV."""
    fa, fb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if fa.shape != fb.shape:
        raise ValueError("both runs need the same number of folds")
    d = fa - fb
    if d.ndim != 1 or d.size < 2:
        raise ValueError("the corrected t-test needs at least 2 paired folds")
    if not np.all(np.isfinite(d)):
        raise ValueError("fold scores must be finite")
    if test_train_ratio < 0:
        raise ValueError("test_train_ratio must be >= 0")
    k = d.size
    mean = float(d.mean())
    df = k - 1
    if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):
        no_difference = mean == 0.0
        return FoldTest(estimate=mean, t=0.0 if no_difference else None, df=df,
                        p_value=1.0 if no_difference else None, ci_low=mean, ci_high=mean, k=k,
                        test_train_ratio=test_train_ratio, sd_difference=0.0, standard_error=0.0,
                        differences=tuple(d.tolist()), degenerate=not no_difference)
    variance = float(d.var(ddof=1))
    se = float(np.sqrt((1.0 / k + test_train_ratio) * variance))
    t = mean / se
    p = float(2.0 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df)) * se
    return FoldTest(estimate=mean, t=float(t), df=df, p_value=min(p, 1.0), ci_low=mean - half, ci_high=mean + half,
                    k=k, test_train_ratio=test_train_ratio, sd_difference=float(np.sqrt(variance)),
                    standard_error=se, differences=tuple(d.tolist()), degenerate=False)


def mcnemar(y_true: ArrayLike, pred_a: ArrayLike, pred_b: ArrayLike) -> McNemar:
    """McNemar's test of equal accuracy on paired predictions. Exact two-sided binomial p when fewer than
    `EXACT_BELOW` rows are discordant, else chi-square (1 df) with continuity correction."""
    y, pa, pb = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    if not (y.shape == pa.shape == pb.shape) or y.ndim != 1 or y.size == 0:
        raise ValueError("y_true, pred_a and pred_b must be 1-d and of the same non-zero length")
    right_a, right_b = pa == y, pb == y
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    n = y.size
    discordant = b + c
    if discordant < EXACT_BELOW:
        p = 1.0 if discordant == 0 else float(min(1.0, 2.0 * stats.binom.cdf(min(b, c), discordant, 0.5)))
        statistic, method = None, "exact"
    else:
        statistic = (abs(b - c) - 1.0) ** 2 / discordant
        p, method = float(stats.chi2.sf(statistic, 1)), "chi2"
    return McNemar(b=b, c=c, n=n, accuracy_a=float(right_a.mean()), accuracy_b=float(right_b.mean()),
                   statistic=statistic, p_value=p, method=method)


@dataclass(frozen=True)
class _Ranking:
    """One model's rows sorted by score, with the sorted positions where each row's group of tied
    scores starts and ends (ties count half a win)."""

    order: np.ndarray
    positive: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, score: np.ndarray) -> _Ranking:
        order = np.argsort(score, kind="stable")
        ranked = score[order]
        starts = np.r_[True, ranked[1:] != ranked[:-1]]
        group = np.cumsum(starts) - 1
        first = np.flatnonzero(starts)
        last = np.r_[first[1:] - 1, ranked.size - 1]
        return cls(order=order, positive=y[order] == 1, first=first[group], last=last[group])

    def auc(self, counts: np.ndarray) -> np.ndarray:
        """ROC-AUC for each row of `counts` (how often each original row was drawn); NaN for one class only."""
        weights = counts[:, self.order]
        negative_weight = weights * ~self.positive
        padded = np.zeros((weights.shape[0], weights.shape[1] + 1))
        np.cumsum(negative_weight, axis=1, out=padded[:, 1:])
        below = padded[:, self.first]
        tied = padded[:, self.last + 1] - below
        pos = self.positive
        wins = np.sum(weights[:, pos] * (below[:, pos] + 0.5 * tied[:, pos]), axis=1)
        pairs = weights[:, pos].sum(axis=1) * negative_weight.sum(axis=1)
        return np.divide(wins, pairs, out=np.full(wins.shape, np.nan), where=pairs > 0)


def _resampled_differences(statistic_a: Callable[[np.ndarray], np.ndarray],
                           statistic_b: Callable[[np.ndarray], np.ndarray], n: int, resamples: int,
                           seed: int) -> np.ndarray:
    """statistic_a - statistic_b on `resamples` paired resamples of n rows (each a row of how often every
    row was drawn), in chunks that bound memory; the non-finite differences dropped."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // n)
    differences = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        rows = rng.integers(0, n, size=(size, n))
        offsets = np.arange(size)[:, None] * n
        weights = np.bincount((rows + offsets).ravel(), minlength=size * n).reshape(size, n).astype(float)
        differences.append(statistic_a(weights) - statistic_b(weights))
    diff = np.concatenate(differences)
    return diff[np.isfinite(diff)]


def _percentile_interval(diff: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """(low, high, two-sided p) of resampled differences: the percentile interval, and p inverting it as
    twice the smaller share on either side of 0, each share (r + 1) / (B + 1) so it is never 0."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(diff, [tail, 1.0 - tail])
    below, above = int(np.sum(diff <= 0)), int(np.sum(diff >= 0))
    return float(low), float(high), min(1.0, 2.0 * (min(below, above) + 1) / (diff.size + 1))


def bootstrap_auc_difference(y_true: ArrayLike, score_a: ArrayLike,
                             score_b: ArrayLike, *, resamples: int = 2000, seed: int = 0,
                             confidence: float = 0.95) -> BootstrapAuc:
    """Resample the shared rows with replacement (the same rows for both models), recompute both AUCs,
    and take the percentile interval of the difference. Resamples holding one class only are skipped.

    The two-sided p-value inverts the percentile interval: twice the smaller share of resampled
    differences on either side of 0, each share counted as (r + 1) / (B + 1) so it is never 0."""
    y = np.asarray(y_true)
    sa, sb = np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
    if not (y.shape == sa.shape == sb.shape) or y.ndim != 1:
        raise ValueError("y_true, score_a and score_b must be 1-d and of the same length")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise ValueError("ROC-AUC needs labels 0 and 1, both present")
    if not (np.all(np.isfinite(sa)) and np.all(np.isfinite(sb))):
        raise ValueError("scores must be finite")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    n = y.size
    rank_a, rank_b = _Ranking.of(y, sa), _Ranking.of(y, sb)
    ones = np.ones((1, n))
    auc_a, auc_b = float(rank_a.auc(ones)[0]), float(rank_b.auc(ones)[0])
    diff = _resampled_differences(rank_a.auc, rank_b.auc, n, resamples, seed)
    used = diff.size
    if used == 0:
        raise ValueError("every resample held one class only")
    low, high, p = _percentile_interval(diff, confidence)
    return BootstrapAuc(estimate=auc_a - auc_b, auc_a=auc_a, auc_b=auc_b, ci_low=float(low), ci_high=float(high),
                        p_value=float(p), resamples=resamples, used=used, n=n)


# ---------------------------------------------------------------- per-row errors and any bootstrapped metric

@dataclass(frozen=True)
class PairedErrors:
    """Paired t-test of the mean per-row loss difference, loss_a - loss_b (squared or absolute errors)."""

    kind: str  # "squared" or "absolute"
    estimate: float
    mean_a: float
    mean_b: float
    t: float | None
    df: int
    p_value: float
    ci_low: float
    ci_high: float
    n: int


def paired_error_test(y_true: ArrayLike, pred_a: ArrayLike, pred_b: ArrayLike, kind: str,
                      confidence: float = 0.95) -> PairedErrors:
    """Student's paired t-test on d_i = loss(a)_i - loss(b)_i over the same rows, with its t interval.
    Identical losses give estimate 0 and p = 1 (no evidence of a difference)."""
    y, a, b = (np.asarray(v, dtype=float) for v in (y_true, pred_a, pred_b))
    if not (y.shape == a.shape == b.shape) or y.ndim != 1 or y.size < 2:
        raise ValueError("y_true, pred_a and pred_b must be 1-d, of the same length, with at least 2 rows")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("true values and predictions must be finite numbers")
    if kind not in ("squared", "absolute"):
        raise ValueError("kind must be 'squared' or 'absolute'")
    loss = np.square if kind == "squared" else np.abs
    la, lb = loss(y - a), loss(y - b)
    d = la - lb
    n, mean = d.size, float(d.mean())
    sd = float(d.std(ddof=1))
    df = n - 1
    if sd == 0.0:
        t, p, low, high = None, 1.0 if mean == 0.0 else 0.0, mean, mean
    else:
        se = sd / np.sqrt(n)
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), df))
        half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
        low, high = mean - half, mean + half
    return PairedErrors(kind=kind, estimate=mean, mean_a=float(la.mean()), mean_b=float(lb.mean()),
                        t=None if t is None else float(t), df=df, p_value=float(p), ci_low=float(low),
                        ci_high=float(high), n=n)


Statistic = Callable[[np.ndarray], np.ndarray]  # resample weights (size, n) -> one value per resample


def rmse_statistic(y_true: ArrayLike, pred: ArrayLike) -> Statistic:
    """RMSE under resample weights: sqrt(sum(w e^2) / sum(w))."""
    squared = np.square(np.asarray(y_true, dtype=float) - np.asarray(pred, dtype=float))
    return lambda weights: np.sqrt(weights @ squared / weights.sum(axis=1))


def macro_f1_statistic(y_true: ArrayLike, pred: ArrayLike, labels: ArrayLike) -> Statistic:
    """Macro F1 over `labels` under resample weights, as scikit-learn's f1_score(average="macro",
    labels=labels, zero_division=0) on the resampled rows."""
    y, p = np.asarray(y_true, dtype=object), np.asarray(pred, dtype=object)
    classes = list(labels)
    tp = np.stack([(y == k) & (p == k) for k in classes], axis=1).astype(float)
    fp = np.stack([(y != k) & (p == k) for k in classes], axis=1).astype(float)
    fn = np.stack([(y == k) & (p != k) for k in classes], axis=1).astype(float)

    def statistic(weights: np.ndarray) -> np.ndarray:
        t, f_p, f_n = weights @ tp, weights @ fp, weights @ fn
        denominator = 2 * t + f_p + f_n
        f1 = np.divide(2 * t, denominator, out=np.zeros_like(t), where=denominator > 0)
        return f1.mean(axis=1)

    return statistic


@dataclass(frozen=True)
class BootstrapDifference:
    """Paired bootstrap of metric(a) - metric(b) on the same rows."""

    estimate: float
    value_a: float
    value_b: float
    ci_low: float
    ci_high: float
    p_value: float
    resamples: int
    used: int
    n: int


def bootstrap_difference(statistic_a: Statistic, statistic_b: Statistic, n: int, *, resamples: int = 2000,
                         seed: int = 0, confidence: float = 0.95) -> BootstrapDifference:
    """Resample the n shared rows with replacement (the same rows for both models), recompute both
    statistics (functions of the (resamples, n) weight matrix) and take the percentile interval of the
    difference; the p-value inverts it, as `bootstrap_auc_difference` does. Non-finite resamples are skipped."""
    if n < 2:
        raise ValueError("the bootstrap needs at least 2 rows")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    ones = np.ones((1, n))
    value_a, value_b = float(statistic_a(ones)[0]), float(statistic_b(ones)[0])
    diff = _resampled_differences(statistic_a, statistic_b, n, resamples, seed)
    if diff.size == 0:
        raise ValueError("no resample gave a finite difference")
    low, high, p = _percentile_interval(diff, confidence)
    return BootstrapDifference(estimate=value_a - value_b, value_a=value_a, value_b=value_b, ci_low=float(low),
                               ci_high=float(high), p_value=float(p), resamples=resamples, used=int(diff.size), n=n)
