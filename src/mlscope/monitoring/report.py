"""The production report of one registered model over a time window: traffic and latency, per version
the predictions, labels and live metrics, input and prediction drift of the served version against its
training reference, a regressor's residual drift against its test split, and its explanation drift.
`mlscope monitor` prints it, the Production view draws it.

A number that cannot be computed is null and the reason is in `problems`: never a made-up value."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, Field

from mlscope import task as tasks
from mlscope.config import Settings
from mlscope.errors import MlscopeError
from mlscope.monitoring import drift as drift_stats
from mlscope.monitoring import layout
from mlscope.monitoring import store
from mlscope.monitoring.explanation_drift import MAX_LIVE_ROWS, ExplanationDrift, explanation_drift
from mlscope.monitoring.live_metrics import PROBABILITY_PREFIX, LiveMetric, classes_of, live_metrics
from mlscope.monitoring.reference import Reference, load_reference
from mlscope.monitoring.residuals import CACHE as RESIDUAL_CACHE
from mlscope.monitoring.residuals import residual_drift
from mlscope.monitoring.window import parse_window
from mlscope.tracking.registry import first_line, list_versions
from mlscope.tracking.version_links import linked_run_id

Status = Literal["ok", "watch", "alert"]
INPUT_PREFIX = "in."
TRAFFIC_COLUMNS = ("request_id", "ts", "model_version", "latency_ms")
SCORED_COLUMNS = ("model_version", "actual", "output", "label")  # and p.<class>: what live metrics read
REFERENCE_CACHE = "references"  # under settings.monitor_dir: training references read from MLflow
BUCKETS = 48  # points of the traffic chart, at most
_NICE_BUCKETS = [timedelta(seconds=s) for s in (10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600,
                                                 86400, 7 * 86400)]
_SEVERITY = {"ok": 0, "watch": 1, "alert": 2}


class Served(BaseModel):
    version: str
    alias: str
    run_id: str | None


class Bucket(BaseModel):
    start: datetime
    predictions: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None


class Traffic(BaseModel):
    predictions: int = Field(description="Logged prediction rows (a batch counts each row).")
    requests: int = Field(description="Requests those rows came from (a batch is one request).")
    buckets: list[Bucket]
    latency_p50_ms: float | None = Field(description="Median request latency; null without predictions.")
    latency_p99_ms: float | None


class VersionReport(BaseModel):
    version: str
    predictions: int
    labelled: int = Field(description="Predictions with feedback (the truth) recorded.")
    live_metrics: list[LiveMetric]
    reference_rows: int | None
    reference_problem: str | None


class FeatureDrift(BaseModel):
    feature: str
    kind: Literal["numeric", "categorical"]
    psi: float | None
    test: Literal["ks", "chi2"] | None
    statistic: float | None
    p_value: float | None
    wasserstein: float | None
    missing_reference: float | None
    missing_live: float | None
    status: Status


class Drift(BaseModel):
    version: str
    rows: int
    reference_rows: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    residuals: FeatureDrift | None = Field(
        default=None, description="A regressor's live residuals (actual − prediction on the labelled rows) vs its "
        "residuals on the run's test split; null, with the reason in problems, when not computable.")


class ProductionReport(BaseModel):
    """What the served model sees, whether it still looks like its training data, and how well it does."""

    model: str
    window: str
    since: datetime
    until: datetime
    generated_at: datetime
    task: Literal["binary", "multiclass", "regression"] | None
    served: Served | None
    status: Literal["ok", "watch", "alert", "no_data"]
    problems: list[str]
    traffic: Traffic
    versions: list[VersionReport]
    drift: Drift | None
    explanation_drift: ExplanationDrift | None


def worst(statuses: Sequence[str]) -> Status:
    """The most severe of ok / watch / alert (ok for none)."""
    return max(statuses, key=_SEVERITY.__getitem__, default="ok")  # type: ignore[return-value]


def bucket_width(span: timedelta) -> timedelta:
    """The smallest round width that draws `span` in at most BUCKETS points."""
    return next((width for width in _NICE_BUCKETS if span / width <= BUCKETS), span / BUCKETS)


def _served(client: MlflowClient, name: str, alias: str, problems: list[str]) -> Served | None:
    versions = list_versions(client, name)  # NotFound when the model does not exist
    holder = next((v for v in versions if alias in (getattr(v, "aliases", None) or [])), None)
    if holder is None:
        try:
            holder = client.get_model_version_by_alias(name, alias)
        except MlflowException:
            problems.append(f"no version of '{name}' holds the alias '{alias}': nothing is served")
            return None
    return Served(version=str(holder.version), alias=alias, run_id=linked_run_id(client, holder))


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def _requests(rows: pa.Table | pd.DataFrame) -> dict[str, np.ndarray]:
    """One entry per request (a batch's rows share `{batch id}-{row}` ids and the request's latency):
    its first row's time (ms since the epoch), latency and row count."""
    with duckdb.connect() as connection:
        connection.register("log_rows", rows)
        return connection.execute(
            "SELECT epoch_ms(min(ts)) AS ts_ms, any_value(latency_ms) AS latency_ms, count(*) AS rows "
            "FROM log_rows GROUP BY split_part(request_id, '-', 1)").fetchnumpy()


def traffic(rows: pa.Table | pd.DataFrame, since: datetime, until: datetime) -> Traffic:
    """Prediction rows, requests and request latency over the window, in round buckets (empty ones too).
    `rows`: the log's request_id, ts and latency_ms columns."""
    width = bucket_width(until - since)
    origin = pd.Timestamp(since).floor(width)
    starts = pd.date_range(origin, pd.Timestamp(until), freq=width, inclusive="left")
    total = rows.num_rows if isinstance(rows, pa.Table) else len(rows)
    if total == 0:
        return Traffic(predictions=0, requests=0, latency_p50_ms=None, latency_p99_ms=None,
                       buckets=[Bucket(start=s.to_pydatetime(), predictions=0, latency_p50_ms=None,
                                       latency_p99_ms=None) for s in starts])
    requests = _requests(rows)
    latency = np.asarray(requests["latency_ms"], dtype=float)
    slot = (np.asarray(requests["ts_ms"], dtype=np.int64) - origin.value // 1_000_000) // (width // timedelta(
        milliseconds=1))
    order = np.argsort(slot, kind="stable")
    edges = np.searchsorted(slot[order], np.arange(len(starts) + 1))
    counts = np.asarray(requests["rows"], dtype=np.int64)[order]
    buckets = []
    for index, start in enumerate(starts):
        inside = slice(edges[index], edges[index + 1])
        in_bucket = latency[order][inside]
        buckets.append(Bucket(start=start.to_pydatetime(), predictions=int(counts[inside].sum()),
                              latency_p50_ms=_percentile(in_bucket, 50), latency_p99_ms=_percentile(in_bucket, 99)))
    return Traffic(predictions=total, requests=len(latency), buckets=buckets,
                   latency_p50_ms=_percentile(latency, 50), latency_p99_ms=_percentile(latency, 99))


def _task_of(client: MlflowClient, run_id: str | None, reference: Reference | None, frame: pd.DataFrame
             ) -> tasks.Task | None:
    """The version's task: its reference's, its run's tag or metrics, else what the logged columns show."""
    if reference is not None and reference.task:
        return tasks.get(reference.task)
    if run_id:
        try:
            run = client.get_run(run_id)
        except MlflowException:
            run = None
        if run is not None:
            found = tasks.infer_from_run(run.data.tags, run.data.metrics)
            if found is not None:
                return found
    if any(c.startswith("p.") for c in frame.columns):
        return tasks.MULTICLASS
    if "label" in frame and frame["label"].notna().any():
        return tasks.BINARY
    return tasks.REGRESSION if "output" in frame and not frame.empty else None


def _test_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    if not run_id:
        return {}
    try:
        return {k: float(v) for k, v in client.get_run(run_id).data.metrics.items()}
    except MlflowException:
        return {}


def _reference(client: MlflowClient, run_id: str | None, version: str, cache_dir: Path
               ) -> tuple[Reference | None, str | None]:
    """The version's training reference, or None and why there is none."""
    if run_id is None:
        return None, f"no reference for version {version}: it has no source run"
    try:
        return load_reference(client, run_id, cache_dir), None
    except MlscopeError as exc:
        return None, f"no reference for version {version}: {exc.message}"
    except (MlflowException, OSError, ValueError) as exc:
        return None, f"no reference for version {version}: {first_line(exc)}"


def _inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The logged model inputs (`in.<feature>` columns) under their feature names."""
    columns = [c for c in frame.columns if c.startswith(INPUT_PREFIX)]
    return frame[columns].rename(columns=lambda c: c.removeprefix(INPUT_PREFIX))


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (-1, version)


def _frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    if "model_version" in frame:
        frame["model_version"] = frame["model_version"].astype(str)
    return frame


def _status(drift: Drift | None) -> Literal["ok", "watch", "alert", "no_data"]:
    if drift is None or drift.rows == 0:
        return "no_data"
    return worst([f.status for f in drift.features] + [f.status for f in (drift.prediction, drift.residuals) if f])


def production_report(settings: Settings, client: MlflowClient, model_name: str, window: str | None = None, *,
                      now: datetime | None = None) -> ProductionReport:
    """The report of `model_name` over the last `window` (settings.monitor_window when None). Drift and
    explanation drift are of the served version (the newest version with predictions when the served one
    has none in the window); status "no_data" when there is nothing to judge (no predictions, no reference)."""
    window = window or settings.monitor_window
    span = parse_window(window)
    until = (now or datetime.now(UTC)).astimezone(UTC)
    since = until - span
    problems: list[str] = []
    served = _served(client, model_name, settings.alias, problems)
    folder = settings.monitor_dir
    logged = store.predictions(folder, model_name, since, until, columns=list(TRAFFIC_COLUMNS))
    header = {"model": model_name, "window": window, "since": since, "until": until,
              "generated_at": datetime.now(UTC), "served": served, "traffic": traffic(logged, since, until)}
    if logged.num_rows == 0:
        problems.append("no predictions logged in this window")
        task = _task_of(client, served.run_id if served else None, None, pd.DataFrame())
        return ProductionReport(**header, task=task.name if task else None, status="no_data", problems=problems,
                                versions=[], drift=None, explanation_drift=None)
    joined_table = store.labelled(folder, model_name, since, until)
    labelled = _frame(joined_table.select([c for c in joined_table.column_names if c in SCORED_COLUMNS
                                           or c.startswith(PROBABILITY_PREFIX)]))
    counts = {str(entry["values"]): int(entry["counts"])
              for entry in pc.value_counts(logged[layout.MODEL_VERSION]).to_pylist()}
    versions = sorted(counts, key=_version_key, reverse=True)
    judged = served.version if served and served.version in versions else versions[0]
    if served and served.version not in versions:
        problems.append(f"no predictions of the served version {served.version} in this window; drift is shown "
                        f"for version {judged}")
    reports: list[VersionReport] = []
    judged_reference: Reference | None = None
    judged_task: tasks.Task | None = None
    judged_run: str | None = None
    judged_labelled = labelled
    for version in versions:
        run_id = served.run_id if served and served.version == version else _run_of(client, model_name, version)
        reference, problem = _reference(client, run_id, version, folder / REFERENCE_CACHE)
        if problem:
            problems.append(problem)
        joined = labelled[labelled["model_version"] == version] if not labelled.empty else labelled
        task = _task_of(client, run_id, reference, joined)
        metrics: list[LiveMetric] = []
        if task is None and not joined.empty:
            problems.append(f"live metrics of version {version}: its task is unknown (no reference, no "
                            "mlscope.task tag, and its logged outputs do not tell)")
        if task is not None and not joined.empty:
            model_classes = reference.classes if reference is not None else []
            metrics = live_metrics(task, joined, classes_of(task, joined, model_classes),
                                   _test_metrics(client, run_id), model_classes=model_classes)
        reports.append(VersionReport(version=version, predictions=counts[version],
                                     labelled=len(joined), live_metrics=metrics, reference_problem=problem,
                                     reference_rows=None if reference is None else int(reference.rows)))
        if version == judged:
            judged_reference, judged_task, judged_run, judged_labelled = reference, task, run_id, joined
    drift = None
    if judged_reference is not None:
        thresholds = drift_stats.Thresholds.from_settings(settings)
        table = drift_stats.window_drift(folder, model_name, judged, since, until, judged_reference, thresholds)
        problems.extend(table.problems)
        residuals, problem = residual_drift(client, judged_task, judged, judged_run, judged_labelled,
                                            folder / RESIDUAL_CACHE, thresholds)
        if problem:
            problems.append(problem)
        drift = Drift.model_validate({**table.to_dict(), "residuals": residuals.to_dict() if residuals else None})
    columns = (None if judged_reference is None
               else [f"{INPUT_PREFIX}{feature}" for feature in judged_reference.features])
    live_table = store.predictions(folder, model_name, since, until, columns=columns, versions=[judged])
    if live_table.num_rows > MAX_LIVE_ROWS:  # explanation drift explains a fixed-seed sample
        live_table = live_table.take(np.sort(np.random.default_rng(0).choice(live_table.num_rows, MAX_LIVE_ROWS,
                                                                             replace=False)))
    live = _frame(live_table)
    explained = explanation_drift(settings, client, judged, judged_run, _inputs(live))
    if explained.problem:
        problems.append(f"explanation drift of version {judged}: {explained.problem}")
    return ProductionReport(**header, task=judged_task.name if judged_task else None, status=_status(drift),
                            problems=problems, versions=reports, drift=drift, explanation_drift=explained)


def _run_of(client: MlflowClient, name: str, version: str) -> str | None:
    try:
        return linked_run_id(client, client.get_model_version(name, version))
    except MlflowException:
        return None
