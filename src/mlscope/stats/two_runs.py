"""Is run A really better than run B? Reads both runs' folds and test predictions from MLflow and runs
the paired tests of `significance` that fit their task (`Task.prediction_tests`: binary ROC-AUC bootstrap and
McNemar; multiclass macro-F1 bootstrap and McNemar; regression RMSE bootstrap and paired t-tests on squared
and absolute errors) plus Nadeau–Bengio on CV folds, each available or not with the reason in plain words."""

from __future__ import annotations

import json
import math
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, Field

from mlscope import task
from mlscope.errors import BadInput, NotFound
from mlscope.stats import significance as sig
from mlscope.tracking.client import proxied_artifacts

FOLDS_FILE = "cv_folds.json"
PREDICTIONS_FILE = "predictions.csv"
UNFINISHED = frozenset({"RUNNING", "SCHEDULED"})

Detail = float | int | str | bool | list[float] | None
T = TypeVar("T")


class RunRef(BaseModel):
    run_id: str
    name: str


class SignificanceTest(BaseModel):
    """One paired test; `estimate` is always run A minus run B."""

    key: Literal["nadeau_bengio", "mcnemar", "bootstrap_auc", "bootstrap_macro_f1", "bootstrap_rmse",
                 "paired_squared_error", "paired_absolute_error"]
    title: str
    available: bool
    reason: str | None = Field(None, description="Why the test could not run (when not available).")
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    statistic: float | None = None
    p_value: float | None = None
    details: dict[str, Detail] = Field(default_factory=dict)
    summary: str


class Significance(BaseModel):
    """Whether the difference between two runs is real, with the tests behind the verdict."""

    metric: str
    task: str | None = Field(None, description="binary, multiclass or regression (the runs' `mlscope.task` tag, "
                                               "else read from their metrics); it decides the tests. Null: unknown, "
                                               "the binary tests are tried.")
    run_a: RunRef
    run_b: RunRef
    verdict: str
    significant: bool | None = Field(description="At α = 0.05 by the verdict's test; null when no test could run.")
    tests: list[SignificanceTest]


@dataclass
class Evidence:
    """What one run offers the tests."""

    run: Run
    name: str  # used in sentences; unique between the two runs
    folds: list[float] | None
    fold_seed: str | None
    stratified: bool | None
    predictions: pd.DataFrame | None
    predictions_problem: str | None  # set when predictions.csv exists but cannot be used

    @property
    def params(self) -> dict[str, str]:
        return self.run.data.params


# ---------------------------------------------------------------- wording

_LABELS = {"roc_auc": "ROC-AUC", "log_loss": "log loss", "f1": "F1"}


def label(metric: str) -> str:
    return _LABELS.get(metric, metric.replace("_", " "))


def num(value: float) -> str:
    """Three decimals with a real minus sign (and no "−0.000")."""
    text = f"{value:.3f}"
    return "0.000" if text == "-0.000" else text.replace("-", "\u2212")


def pval(p: float) -> str:
    """Two significant digits, more when rounding would carry p across α (0.0496 is not "0.05")."""
    if p < 0.001:
        return "p < 0.001"
    for digits in range(2, 8):
        text = f"{p:.{digits}g}"
        if (float(text) < sig.ALPHA) == (p < sig.ALPHA):
            break
    return f"p = {text}"


def verdict_clause(name_a: str, name_b: str, estimate: float, ci_low: float | None, ci_high: float | None,
                   p_value: float, what: str, higher_is_better: bool) -> str:
    """The sentence "<better> beats <worse> on <what> by <amount>, 95% CI [lo, hi]: (not) significant (p = …)",
    the amount and interval being the better run's advantage; `estimate` and the interval given are A − B."""
    word = "significant" if p_value < sig.ALPHA else "not significant"
    sign = 1.0 if higher_is_better else -1.0
    if estimate == 0:
        factor, head = sign, f"{name_a} and {name_b} tie on {what} (difference 0.000"
    else:
        factor = sign if sign * estimate > 0 else -sign
        better, worse = (name_a, name_b) if factor == sign else (name_b, name_a)
        head = f"{better} beats {worse} on {what} by {num(factor * estimate)}"
    if ci_low is not None and ci_high is not None:
        low, high = sorted((factor * ci_low, factor * ci_high))
        head += f", 95% CI [{num(low)}, {num(high)}]"
    if estimate == 0:
        head += ")"
    return f"{head}: {word} ({pval(p_value)})"


# ---------------------------------------------------------------- reading the runs

def _get_run(client: MlflowClient, run_id: str, field: str) -> Run:
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise NotFound(f"run '{run_id}' not found", field=field) from None
        raise
    if run.info.lifecycle_stage == "deleted":
        raise NotFound(f"run '{run_id}' is deleted", field=field)
    return run


def _download(client: MlflowClient, run_id: str, name: str, read: Callable[[Path], T]) -> T:
    with tempfile.TemporaryDirectory(prefix="mlscope-") as tmp, proxied_artifacts():
        return read(Path(client.download_artifacts(run_id, name, tmp)))


def _fold_values(client: MlflowClient, run: Run, metric: str, listed: set[str]
                 ) -> tuple[list[float] | None, str | None, bool | None]:
    """(per-fold values of `metric`, CV seed, stratified?) from cv_folds.json, else the cv_<metric>
    metric history (steps 0..k-1) and the run's seed params."""
    params = run.data.params
    seed = params.get("cv_seed") or params.get("split_seed")
    if FOLDS_FILE in listed:
        try:
            payload = _download(client, run.info.run_id, FOLDS_FILE, lambda p: json.loads(p.read_text()))
        except (ValueError, OSError):
            payload = None
        if isinstance(payload, dict):
            values = (payload.get("values") or {}).get(metric)
            json_seed = payload.get("seed")
            seed = str(json_seed) if json_seed is not None else seed
            stratified = payload.get("stratified") if isinstance(payload.get("stratified"), bool) else None
            if isinstance(values, list) and all(isinstance(v, int | float) for v in values):
                return [float(v) for v in values], seed, stratified
    history = client.get_metric_history(run.info.run_id, f"cv_{metric}")
    if not history:
        return None, seed, None
    by_step: dict[int, tuple[int, float]] = {}
    for point in history:  # the latest value logged at a step wins
        if point.step not in by_step or point.timestamp >= by_step[point.step][0]:
            by_step[point.step] = (point.timestamp, float(point.value))
    declared = params.get("cv_folds", "")
    k = int(declared) if declared.isdigit() else len(by_step)
    if any(step not in by_step for step in range(k)):
        return None, seed, None
    return [by_step[step][1] for step in range(k)], seed, None


def _read_predictions(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    if frame.shape[1] < 2:
        raise ValueError("it has fewer than two columns")
    frame = frame.rename(columns={frame.columns[0]: "_id"})
    frame["_id"] = frame["_id"].astype(str)
    return frame


def _evidence(client: MlflowClient, run: Run, name: str, metric: str) -> Evidence:
    run_id = run.info.run_id
    with proxied_artifacts():
        listed = {item.path for item in client.list_artifacts(run_id)}
    folds, seed, stratified = _fold_values(client, run, metric, listed)
    predictions, problem = None, None
    if PREDICTIONS_FILE in listed:
        try:
            predictions = _download(client, run_id, PREDICTIONS_FILE, _read_predictions)
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            problem = f"run '{name}' has an unreadable {PREDICTIONS_FILE} ({str(exc).splitlines()[0]})"
        else:
            if "y_true" not in predictions.columns:
                predictions, problem = None, f"run '{name}' has a {PREDICTIONS_FILE} without a y_true column"
            elif predictions["_id"].duplicated().any():
                predictions, problem = None, f"run '{name}' has a {PREDICTIONS_FILE} that repeats ids in its first column"
    return Evidence(run=run, name=name, folds=folds, fold_seed=seed, stratified=stratified,
                    predictions=predictions, predictions_problem=problem)


def _names(run_a: Run, run_b: Run) -> tuple[str, str]:
    names = [r.info.run_name or r.info.run_id[:8] for r in (run_a, run_b)]
    if names[0] == names[1]:
        names = [f"{n} ({r.info.run_id[:8]})" for n, r in zip(names, (run_a, run_b), strict=True)]
    return names[0], names[1]


def _runs_lacking(runs: list[Evidence], thing: str, why: str) -> str:
    quoted = " and ".join(f"'{e.name}'" for e in runs)
    return f"run{'s' if len(runs) > 1 else ''} {quoted} ha{'ve' if len(runs) > 1 else 's'} no {thing}: {why}"


# ---------------------------------------------------------------- the three tests

def _unavailable(key: str, title: str, reason: str, **extra: object) -> SignificanceTest:
    return SignificanceTest(key=key, title=title, available=False, reason=reason, summary=reason, **extra)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _same(what: str, a: str | None, b: str | None, ea: Evidence, eb: Evidence, why: str) -> str | None:
    """A reason when the two runs' `what` is unknown or differs."""
    unknown = [e for e, v in ((ea, a), (eb, b)) if v in (None, "")]
    if unknown:
        return _runs_lacking(unknown, f"recorded {what}", why)
    if a != b:
        return f"'{ea.name}' and '{eb.name}' differ in {what} ({a} vs {b}): {why}"
    return None


def fold_test(ea: Evidence, eb: Evidence, metric: str) -> SignificanceTest:
    """Nadeau–Bengio on the two runs' per-fold scores, if they used the same folds of the same data."""
    name = label(metric)
    of = "" if metric == "roc_auc" else f" of {name}"
    title = f"Corrected resampled t-test (Nadeau–Bengio) on CV folds{of}"
    why = "the corrected t-test pairs the two runs fold by fold"
    missing = [e for e in (ea, eb) if e.folds is None]
    if missing:
        return _unavailable("nadeau_bengio", title, _runs_lacking(
            missing, f"per-fold {name} scores ({FOLDS_FILE} artifact or cv_{metric} metric history)", why))
    fa, fb = ea.folds or [], eb.folds or []
    k = len(fa)
    if k != len(fb):
        return _unavailable("nadeau_bengio", title,
                            f"'{ea.name}' has {k} CV folds and '{eb.name}' {len(fb)}: {why}, so both need the same folds")
    title = f"Corrected resampled t-test (Nadeau–Bengio) on {k} CV folds{of}"
    if k < 2:
        return _unavailable("nadeau_bengio", title, f"the runs have {k} CV fold: the t-test needs at least 2")
    same_folds = "the folds are only paired when both runs split the same data the same way"
    reason = (_same("dataset digest (param dataset_digest)", ea.params.get("dataset_digest"),
                    eb.params.get("dataset_digest"), ea, eb, same_folds)
              or _same("CV seed (param cv_seed or split_seed)", ea.fold_seed, eb.fold_seed, ea, eb, same_folds)
              or _same("training rows (param train_rows)", ea.params.get("train_rows"), eb.params.get("train_rows"),
                       ea, eb, same_folds))
    if reason is None and None not in (ea.stratified, eb.stratified) and ea.stratified != eb.stratified:
        reason = f"one run used stratified folds and the other did not: {same_folds}"
    if reason is None and not all(math.isfinite(v) for v in fa + fb):
        reason = f"some folds have no {name} value (e.g. a fold with one class only): {why}"
    if reason:
        return _unavailable("nadeau_bengio", title, reason)
    result = sig.corrected_t_test(fa, fb, 1.0 / (k - 1))
    details: dict[str, Detail] = {
        "folds": k, "df": result.df, "test_train_ratio": result.test_train_ratio,
        "mean_a": float(np.mean(fa)), "mean_b": float(np.mean(fb)), "sd_difference": result.sd_difference,
        "standard_error": result.standard_error, "differences": list(result.differences),
        "folds_a": fa, "folds_b": fb, "degenerate": result.degenerate,
    }
    if ea.params.get("train_rows", "").isdigit():
        details["train_rows"] = int(ea.params["train_rows"])
    if result.degenerate:
        return _unavailable(
            "nadeau_bengio", title,
            f"every fold differs by exactly {num(result.estimate)} {name}: with no variance across folds the "
            "corrected t-test is degenerate (it would claim certainty), so it gives no p-value",
            estimate=result.estimate, details=details)
    assert result.p_value is not None
    summary = f"Averaged over {k} CV folds, " + verdict_clause(
        ea.name, eb.name, result.estimate, result.ci_low, result.ci_high, result.p_value, name,
        task.higher_is_better(metric)) + " (variance corrected for overlapping training sets)."
    return SignificanceTest(key="nadeau_bengio", title=title, available=True, estimate=result.estimate,
                            ci_low=result.ci_low, ci_high=result.ci_high, statistic=_finite(result.t),
                            p_value=result.p_value, details=details, summary=summary)


def _paired_predictions(ea: Evidence, eb: Evidence, why: str) -> tuple[pd.DataFrame | None, str | None]:
    problems = [e.predictions_problem for e in (ea, eb) if e.predictions_problem]
    if problems:
        return None, f"{'; '.join(problems)}: {why}"
    missing = [e for e in (ea, eb) if e.predictions is None]
    if missing:
        return None, _runs_lacking(missing, f"{PREDICTIONS_FILE} artifact", why)
    pa, pb = ea.predictions, eb.predictions
    assert pa is not None and pb is not None
    joined = pa.merge(pb, on="_id", suffixes=("_a", "_b"), validate="one_to_one")
    if not (len(joined) == len(pa) == len(pb)) or joined.empty:
        return None, (f"the runs were scored on different test rows ({len(joined)} shared ids of {len(pa)} and "
                      f"{len(pb)}): {why}")
    if not np.array_equal(joined["y_true_a"].to_numpy(), joined["y_true_b"].to_numpy()):
        return None, f"the runs disagree on the true labels of the same ids: {why}"
    return joined, None


def mcnemar_test(ea: Evidence, eb: Evidence) -> SignificanceTest:
    """McNemar's test on the two runs' predicted labels for the same test rows."""
    title = "McNemar's test on the shared test rows"
    joined, reason = _paired_predictions(ea, eb, "McNemar's test needs both runs' predictions on the same test rows")
    if joined is None:
        return _unavailable("mcnemar", title, reason or "")
    lacking = [e for e in (ea, eb) if "y_pred" not in (e.predictions.columns if e.predictions is not None else ())]
    if lacking:
        return _unavailable("mcnemar", title, _runs_lacking(
            lacking, f"y_pred column in {PREDICTIONS_FILE}", "McNemar's test compares predicted labels"))
    result = sig.mcnemar(joined["y_true_a"].to_numpy(), joined["y_pred_a"].to_numpy(), joined["y_pred_b"].to_numpy())
    title = f"McNemar's test on {result.n:,} shared test rows"
    how = "exact binomial" if result.method == "exact" else "chi-square with continuity correction"
    details: dict[str, Detail] = {"b": result.b, "c": result.c, "rows": result.n, "method": result.method,
                                  "accuracy_a": result.accuracy_a, "accuracy_b": result.accuracy_b}
    summary = (f"Only '{ea.name}' is right on {result.b} rows and only '{eb.name}' on {result.c} "
               f"(accuracy {num(result.accuracy_a)} vs {num(result.accuracy_b)}); McNemar's {how} test gives "
               f"{pval(result.p_value)}: {'significant' if result.p_value < sig.ALPHA else 'not significant'}.")
    return SignificanceTest(key="mcnemar", title=title, available=True, estimate=result.estimate,
                            statistic=result.statistic, p_value=result.p_value, details=details, summary=summary)


def bootstrap_test(ea: Evidence, eb: Evidence, metric: str, resamples: int, seed: int) -> SignificanceTest:
    """Paired bootstrap of the ROC-AUC difference on the shared test rows (whatever `metric` is)."""
    always = "" if metric == "roc_auc" else " (always ROC-AUC, whatever the metric)"
    title = f"Paired bootstrap of the ROC-AUC difference on the shared test rows{always}"
    why = "the bootstrap needs both runs' predicted probabilities on the same test rows"
    joined, reason = _paired_predictions(ea, eb, why)
    if joined is None:
        return _unavailable("bootstrap_auc", title, reason or "")
    lacking = [e for e in (ea, eb) if "probability" not in (e.predictions.columns if e.predictions is not None else ())]
    if lacking:
        return _unavailable("bootstrap_auc", title,
                            _runs_lacking(lacking, f"probability column in {PREDICTIONS_FILE}", "ROC-AUC needs scores"))
    y = joined["y_true_a"].to_numpy()
    scores = [pd.to_numeric(joined[f"probability_{s}"], errors="coerce").to_numpy(dtype=float) for s in "ab"]
    title = f"Paired bootstrap of the ROC-AUC difference on {len(joined):,} shared test rows{always}"
    if set(pd.unique(y).tolist()) != {0, 1}:
        return _unavailable("bootstrap_auc", title, "ROC-AUC needs true labels 0 and 1, both present in the test rows")
    if not all(np.isfinite(s).all() for s in scores):
        return _unavailable("bootstrap_auc", title, f"some probabilities in {PREDICTIONS_FILE} are missing or not numbers")
    result = sig.bootstrap_auc_difference(y.astype(int), scores[0], scores[1], resamples=resamples, seed=seed)
    details: dict[str, Detail] = {"auc_a": result.auc_a, "auc_b": result.auc_b, "rows": result.n,
                                  "resamples": result.resamples, "resamples_used": result.used, "seed": seed}
    summary = f"Over {result.used:,} paired resamples of the {result.n:,} shared test rows, " + verdict_clause(
        ea.name, eb.name, result.estimate, result.ci_low, result.ci_high, result.p_value, "ROC-AUC", True) + "."
    return SignificanceTest(key="bootstrap_auc", title=title, available=True, estimate=result.estimate,
                            ci_low=result.ci_low, ci_high=result.ci_high, p_value=result.p_value, details=details,
                            summary=summary)


def _numeric_predictions(joined: pd.DataFrame, ea: Evidence, eb: Evidence, why: str
                         ) -> tuple[np.ndarray | None, list[np.ndarray] | None, str | None]:
    """(true values, [predictions a, b], None) of regressors, or (None, None, why not)."""
    column = next((c for c in ("prediction", "y_pred") if all(
        e.predictions is not None and c in e.predictions.columns for e in (ea, eb))), None)
    if column is None:
        return None, None, _runs_lacking([ea, eb], f"prediction (or y_pred) column in {PREDICTIONS_FILE}", why)
    y = pd.to_numeric(joined["y_true_a"], errors="coerce").to_numpy(dtype=float)
    predictions = [pd.to_numeric(joined[f"{column}_{s}"], errors="coerce").to_numpy(dtype=float) for s in "ab"]
    if not (np.isfinite(y).all() and all(np.isfinite(p).all() for p in predictions)):
        return None, None, f"some true values or predictions in {PREDICTIONS_FILE} are missing or not numbers: {why}"
    return y, predictions, None


def error_test(ea: Evidence, eb: Evidence, kind: str) -> SignificanceTest:
    """Paired t-test on the regressors' per-row squared or absolute errors."""
    key = f"paired_{kind}_error"
    what = "squared error" if kind == "squared" else "absolute error"
    title = f"Paired t-test on per-row {what}s"
    why = f"the paired t-test needs both runs' predictions on the same test rows"
    joined, reason = _paired_predictions(ea, eb, why)
    y, predictions, problem = (None, None, reason) if joined is None else _numeric_predictions(joined, ea, eb, why)
    if y is None or predictions is None:
        return _unavailable(key, title, problem or "")
    result = sig.paired_error_test(y, predictions[0], predictions[1], kind)
    title = f"Paired t-test on per-row {what}s of {result.n:,} shared test rows"
    details: dict[str, Detail] = {"rows": result.n, "df": result.df, f"mean_{kind}_error_a": result.mean_a,
                                  f"mean_{kind}_error_b": result.mean_b}
    summary = "Row by row, " + verdict_clause(ea.name, eb.name, result.estimate, result.ci_low, result.ci_high,
                                              result.p_value, f"mean {what}", False) + "."
    return SignificanceTest(key=key, title=title, available=True, estimate=result.estimate, ci_low=result.ci_low,
                            ci_high=result.ci_high, statistic=result.t, p_value=result.p_value, details=details,
                            summary=summary)


def bootstrap_metric_test(ea: Evidence, eb: Evidence, key: str, resamples: int, seed: int) -> SignificanceTest:
    """Paired bootstrap of the RMSE (regression) or macro-F1 (multiclass) difference on the shared test rows."""
    rmse = key == "bootstrap_rmse"
    name = "RMSE" if rmse else "macro F1"
    title = f"Paired bootstrap of the {name} difference on the shared test rows"
    why = f"the bootstrap needs both runs' predictions on the same test rows"
    joined, reason = _paired_predictions(ea, eb, why)
    if joined is None:
        return _unavailable(key, title, reason or "")
    if rmse:
        y, predictions, problem = _numeric_predictions(joined, ea, eb, why)
        if y is None or predictions is None:
            return _unavailable(key, title, problem or "")
        statistics = [sig.rmse_statistic(y, p) for p in predictions]
    else:
        lacking = [e for e in (ea, eb) if e.predictions is None or "y_pred" not in e.predictions.columns]
        if lacking:
            return _unavailable(key, title, _runs_lacking(lacking, f"y_pred column in {PREDICTIONS_FILE}",
                                                          "macro F1 compares predicted labels"))
        truth = joined["y_true_a"].astype(str).to_numpy()
        labels = sorted(set(truth.tolist()) | set(joined["y_pred_a"].astype(str)) | set(joined["y_pred_b"].astype(str)))
        statistics = [sig.macro_f1_statistic(truth, joined[f"y_pred_{s}"].astype(str).to_numpy(), labels)
                      for s in "ab"]
    result = sig.bootstrap_difference(statistics[0], statistics[1], len(joined), resamples=resamples, seed=seed)
    title = f"Paired bootstrap of the {name} difference on {result.n:,} shared test rows"
    details: dict[str, Detail] = {f"{'rmse' if rmse else 'f1_macro'}_a": result.value_a,
                                  f"{'rmse' if rmse else 'f1_macro'}_b": result.value_b, "rows": result.n,
                                  "resamples": result.resamples, "resamples_used": result.used, "seed": seed}
    summary = f"Over {result.used:,} paired resamples of the {result.n:,} shared test rows, " + verdict_clause(
        ea.name, eb.name, result.estimate, result.ci_low, result.ci_high, result.p_value, name, not rmse) + "."
    return SignificanceTest(key=key, title=title, available=True, estimate=result.estimate, ci_low=result.ci_low,
                            ci_high=result.ci_high, p_value=result.p_value, details=details, summary=summary)


def _pair_task(run_a: Run, run_b: Run) -> tuple[task.Task | None, str | None]:
    """The runs' common task, or (None, why the prediction tests cannot pair them)."""
    found = [task.infer_from_run(r.data.tags, r.data.metrics) for r in (run_a, run_b)]
    if found[0] is not None and found[1] is not None and found[0] is not found[1]:
        return None, (f"the runs solve different tasks ({found[0].name} and {found[1].name}): their predictions "
                      "cannot be compared row by row")
    return found[0] or found[1], None


def _prediction_tests(ea: Evidence, eb: Evidence, kind: task.Task | None, mismatch: str | None, resamples: int,
                      seed: int, metric: str) -> dict[str, SignificanceTest]:
    keys = (kind or task.BINARY).prediction_tests
    if mismatch:
        return {key: _unavailable(key, key.replace("_", " "), mismatch) for key in keys}
    built: dict[str, Callable[[], SignificanceTest]] = {
        "mcnemar": lambda: mcnemar_test(ea, eb),
        "bootstrap_auc": lambda: bootstrap_test(ea, eb, metric, resamples, seed),
        "bootstrap_macro_f1": lambda: bootstrap_metric_test(ea, eb, "bootstrap_macro_f1", resamples, seed),
        "bootstrap_rmse": lambda: bootstrap_metric_test(ea, eb, "bootstrap_rmse", resamples, seed),
        "paired_squared_error": lambda: error_test(ea, eb, "squared"),
        "paired_absolute_error": lambda: error_test(ea, eb, "absolute"),
    }
    return {key: built[key]() for key in keys}


# ---------------------------------------------------------------- the verdict

_WHAT: dict[str, tuple[str, bool]] = {  # the verdict's wording and direction of each prediction test
    "bootstrap_auc": ("ROC-AUC", True), "bootstrap_macro_f1": ("macro F1", True), "bootstrap_rmse": ("RMSE", False),
    "mcnemar": ("accuracy (McNemar's test)", True), "paired_squared_error": ("mean squared error", False),
    "paired_absolute_error": ("mean absolute error", False),
}


def _verdict(tests: dict[str, SignificanceTest], ea: Evidence, eb: Evidence, metric: str, order: tuple[str, ...]
             ) -> tuple[str, bool | None]:
    """The first available test in `order` (the task's bootstrap, the fold test, then the others) speaks."""
    for key in order:
        test = tests[key]
        if not test.available or test.estimate is None or test.p_value is None:
            continue
        if key == "nadeau_bengio":
            what, higher = f"cross-validated {label(metric)}", task.higher_is_better(metric)
        else:
            what, higher = _WHAT[key]
        text = verdict_clause(ea.name, eb.name, test.estimate, test.ci_low, test.ci_high, test.p_value, what, higher)
        return text, test.p_value < sig.ALPHA
    return f"No test can compare '{ea.name}' and '{eb.name}': each test below says what is missing", None


def compare_runs(client: MlflowClient, run_a: Run, run_b: Run, metric: str | None = None, *,
                 resamples: int = 2000, seed: int = 0) -> Significance:
    """The task's tests and the verdict for two already-fetched runs; `metric` (the fold test's) defaults
    to the task's headline."""
    kind, mismatch = _pair_task(run_a, run_b)
    metric = metric or (kind or task.BINARY).headline
    name_a, name_b = _names(run_a, run_b)
    ea, eb = _evidence(client, run_a, name_a, metric), _evidence(client, run_b, name_b, metric)
    predictions = _prediction_tests(ea, eb, kind, mismatch, resamples, seed, metric)
    tests = {"nadeau_bengio": fold_test(ea, eb, metric), **predictions}
    bootstraps = [key for key in predictions if key.startswith("bootstrap")]
    order = (*bootstraps, "nadeau_bengio", *(key for key in predictions if key not in bootstraps))
    verdict, significant = _verdict(tests, ea, eb, metric, order)
    refs = [RunRef(run_id=r.info.run_id, name=r.info.run_name or r.info.run_id[:8]) for r in (run_a, run_b)]
    return Significance(metric=metric, task=kind.name if kind else None, run_a=refs[0], run_b=refs[1],
                        verdict=verdict, significant=significant, tests=list(tests.values()))


def _fetch_pair(client: MlflowClient, run_a: str, run_b: str) -> tuple[Run, Run]:
    if run_a == run_b:
        raise BadInput(f"a and b are the same run '{run_a}': pick two different runs", field="b")
    return _get_run(client, run_a, "a"), _get_run(client, run_b, "b")


def compare_two(client: MlflowClient, run_a: str, run_b: str, metric: str | None = None, *,
                resamples: int = 2000, seed: int = 0) -> Significance:
    """Is the difference between runs `run_a` and `run_b` real? Every estimate is A minus B."""
    a, b = _fetch_pair(client, run_a, run_b)
    return compare_runs(client, a, b, metric, resamples=resamples, seed=seed)


class SignificanceCache:
    """Finished runs never change, so their comparison is computed once (bounded, least recently used out)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str, str | None], Significance] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def compare(self, client: MlflowClient, run_a: str, run_b: str, metric: str | None = None) -> Significance:
        """`compare_two`, cached unless either run is still running."""
        key = (run_a, run_b, metric)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        a, b = _fetch_pair(client, run_a, run_b)
        result = compare_runs(client, a, b, metric)
        if a.info.status not in UNFINISHED and b.info.status not in UNFINISHED:
            with self._lock:
                self._items[key] = result
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
        return result
