"""Selected runs side by side: every param and metric (with the best run per metric) from the run index,
and the artifacts the compare view charts (ROC curve, confusion matrix, fairness slices) from the runs'
artifact stores. Runs without those artifacts still compare; each chart part then says what is missing."""

from __future__ import annotations

import json
import math
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, Field, ValidationError

from mlscope import task
from mlscope.errors import BadInput, NeedsTrackingServer, NotFound
from mlscope.tracking.client import run_repository
from mlscope.tracking.index import IndexedRun, RunIndex
from mlscope.tracking.index.translate import one_line
from mlscope.tracking.runs import infer_direction

MIN_RUNS = 2
MAX_RUNS = 50
HEADLINE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
ROC_FILE = "roc_curve.json"
ROC_CLASSES_FILE = "roc_curves.json"  # multiclass: one-vs-rest, one curve per class
REPORT_FILE = "classification_report.json"
FAIRNESS_FILE = "fairness.json"
_RUN_ID = re.compile(r"^[A-Za-z0-9][\w\-]{0,255}$")  # MLflow's own run id rule
_REPORT_SUMMARIES = {"accuracy", "macro avg", "weighted avg", "micro avg", "samples avg", "confusion_matrix"}
_DOWNLOAD_WORKERS = 8
M = TypeVar("M", bound=BaseModel)


class CompareRun(BaseModel):
    run_id: str
    name: str
    status: str
    start_time: int | None
    end_time: int | None
    model_type: str | None
    experiment_id: str
    link: str


class ParamRow(BaseModel):
    """One param key: each run's value (None where the run has no such param), in run order."""

    key: str
    values: list[str | None]
    differs: bool


class MetricRow(BaseModel):
    """One metric key: each run's latest value (None when missing or NaN), and the run(s) with the best."""

    key: str
    direction: Literal["max", "min"]
    values: list[float | None]
    best: list[str]


class Missing(BaseModel):
    missing: str


class RocCurve(BaseModel):
    fpr: list[float | None]
    tpr: list[float | None]
    thresholds: list[float | None] | None = None
    auc: float | None = None


class ConfusionMatrix(BaseModel):
    """Rows are the true labels, columns the predicted ones (sklearn's layout: [[tn, fp], [fn, tp]])."""

    labels: list[str]
    matrix: list[list[int]]


class FairnessColumn(BaseModel):
    groups: dict[str, dict[str, int | float | None]]
    demographic_parity_difference: float | None = None
    equalized_odds_difference: float | None = None
    differences: dict[str, float | None] = Field(default_factory=dict, description=(
        "Every largest between-group difference the run logged for this column, by name (binary: the two "
        "parity differences; regression: mae/rmse/mean_residual_difference; multiclass: accuracy/f1_macro_...)."))


class Fairness(BaseModel):
    """fairness.json: per sensitive column, metrics per group and the parity differences."""

    columns: dict[str, FairnessColumn]


class RunArtifacts(BaseModel):
    """The artifact-derived parts of one run's comparison (what the cache keeps)."""

    roc: RocCurve | Missing
    confusion: ConfusionMatrix | Missing
    fairness: Fairness | Missing
    roc_by_class: dict[str, RocCurve] | None = None


class Comparison(BaseModel):
    """Everything the compare view shows. `roc`, `confusion` and `fairness` are keyed by run id."""

    runs: list[CompareRun]
    params: list[ParamRow]
    metrics: list[MetricRow]
    headline: list[str]
    task: str | None = Field(None, description="The runs' common task (binary, multiclass, regression), when "
                                               "they share one; null otherwise.")
    roc: dict[str, RocCurve | Missing]
    roc_by_class: dict[str, dict[str, RocCurve] | None] = Field(default_factory=dict, description=(
        "Multiclass runs: one-vs-rest ROC curve per class (roc_curves.json), by run id; null for other runs."))
    confusion: dict[str, ConfusionMatrix | Missing]
    fairness: dict[str, Fairness | Missing]


class ArtifactCache:
    """RunArtifacts of finished runs by run id, least recently used dropped first. A finished run's
    artifacts do not change, so entries never expire."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._entries: OrderedDict[str, RunArtifacts] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run_id: str) -> RunArtifacts | None:
        with self._lock:
            found = self._entries.get(run_id)
            if found is not None:
                self._entries.move_to_end(run_id)
            return found

    def put(self, run_id: str, parts: RunArtifacts) -> None:
        with self._lock:
            self._entries[run_id] = parts
            self._entries.move_to_end(run_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __contains__(self, run_id: object) -> bool:
        with self._lock:
            return run_id in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def parse_run_ids(text: str) -> list[str]:
    """'a,b,c' as run ids: 2..MAX_RUNS distinct, well-formed ids (BadInput naming field 'runs' otherwise)."""
    run_ids = [part.strip() for part in text.split(",") if part.strip()]
    if len(run_ids) < MIN_RUNS:
        raise BadInput(f"choose at least {MIN_RUNS} runs to compare, got {len(run_ids)}", field="runs")
    if len(run_ids) > MAX_RUNS:
        raise BadInput(f"compare at most {MAX_RUNS} runs at once, got {len(run_ids)}", field="runs")
    malformed = [run_id for run_id in run_ids if not _RUN_ID.match(run_id)]
    if malformed:
        raise BadInput(f"not a run id: {malformed[0][:80]!r}", field="runs")
    repeated = sorted({run_id for run_id in run_ids if run_ids.count(run_id) > 1})
    if repeated:
        raise BadInput(f"run(s) listed more than once: {', '.join(repeated)}", field="runs")
    return run_ids


def compare_runs(index: RunIndex, client: MlflowClient, cache: ArtifactCache, run_ids: Sequence[str]) -> Comparison:
    """The comparison of `run_ids` (in that order). Artifacts of finished runs are read once, then cached."""
    try:
        found = index.compare(run_ids)
    except NotFound as exc:
        raise NotFound(exc.message, field="runs") from None
    runs = found.runs
    differing = set(found.differing_params)
    params = [ParamRow(key=key, values=[run.params.get(key) for run in runs], differs=key in differing)
              for key in found.param_keys]
    metrics = [metric_row(key, runs) for key in found.metric_keys]
    parts = run_artifacts(client, cache, runs)
    kind = runs_task(runs)
    return Comparison(
        runs=[compare_run(run) for run in runs], params=params, metrics=metrics,
        headline=headline_metrics(runs, found.metric_keys), task=kind.name if kind else None,
        roc={run.run_id: parts[run.run_id].roc for run in runs},
        roc_by_class={run.run_id: parts[run.run_id].roc_by_class for run in runs},
        confusion={run.run_id: parts[run.run_id].confusion for run in runs},
        fairness={run.run_id: parts[run.run_id].fairness for run in runs},
    )


def runs_task(runs: Sequence[IndexedRun]) -> task.Task | None:
    """The task the runs share (`mlscope.task` tag, else their metric names), or None."""
    kinds = {task.infer_from_run(run.tags, run.metrics) for run in runs}
    return kinds.pop() if len(kinds) == 1 else None


def headline_metrics(runs: Sequence[IndexedRun], present: Sequence[str]) -> list[str]:
    """The metrics to lead with, present ones only: the runs' task's (its headline first) when they share
    one, else the binary classifier's as before."""
    kind = runs_task(runs)
    order = (kind.headline, *kind.metric_names) if kind is not None else ("roc_auc", *HEADLINE_METRICS)
    return [key for key in dict.fromkeys(order) if key in present]


def display_name(run: IndexedRun) -> str:
    return run.run_name or run.run_id[:8]


def compare_run(run: IndexedRun) -> CompareRun:
    return CompareRun(run_id=run.run_id, name=display_name(run), status=run.status, start_time=run.start_time,
                      end_time=run.end_time, model_type=run.params.get("model_type"),
                      experiment_id=run.experiment_id, link=f"/runs/{quote(run.run_id, safe='')}")


def metric_row(key: str, runs: Sequence[IndexedRun]) -> MetricRow:
    """Values of `key` per run; best is every run holding the highest value (lowest for loss-like names)."""
    direction = "min" if infer_direction(key) == "min" else "max"
    values = [_finite(run.metrics.get(key)) for run in runs]
    present = [value for value in values if value is not None]
    best: list[str] = []
    if present:
        target = min(present) if direction == "min" else max(present)
        best = [run.run_id for run, value in zip(runs, values, strict=True) if value == target]
    return MetricRow(key=key, direction=direction, values=values, best=best)


def run_artifacts(client: MlflowClient, cache: ArtifactCache, runs: Sequence[IndexedRun]) -> dict[str, RunArtifacts]:
    """Each run's RunArtifacts: from the cache, else read (in parallel) and cached when the run is FINISHED."""
    parts: dict[str, RunArtifacts] = {}
    to_read = []
    for run in runs:
        cached = cache.get(run.run_id)
        if cached is not None:
            parts[run.run_id] = cached
        else:
            to_read.append(run)
    # Local artifact stores are read one run after another (a thread pool only adds overhead on small
    # files); remote ones in parallel, where each read waits on the network.
    remote = any(not (run.artifact_uri or "").startswith(("file:", "/")) for run in to_read)
    workers = min(_DOWNLOAD_WORKERS, len(to_read)) if remote else 1
    if to_read:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for run, (read, complete) in zip(to_read, pool.map(lambda r: read_artifacts(client, r), to_read),
                                             strict=True):
                parts[run.run_id] = read
                if complete and run.status == "FINISHED":
                    cache.put(run.run_id, read)
    return parts


def read_artifacts(client: MlflowClient, run: IndexedRun) -> tuple[RunArtifacts, bool]:
    """The run's chart artifacts, listing the root once and fetching only the files that exist.
    The flag is False when the store failed (worth reading again later, so not cached)."""
    name = display_name(run)
    try:
        repo = run_repository(client, run.artifact_uri or "")
        listed = {item.path for item in repo.list_artifacts() if not item.is_dir}
    except (MlflowException, OSError, NeedsTrackingServer) as exc:
        gone = Missing(missing=f"the artifacts of run '{name}' could not be listed: {one_line(exc)}")
        return RunArtifacts(roc=gone, confusion=gone, fairness=gone), False
    complete = True
    with tempfile.TemporaryDirectory(prefix="mlscope-compare-") as tmp:

        def load(file: str, parse: Callable[[Any], M | Missing]) -> M | Missing:
            nonlocal complete
            if file not in listed:
                return Missing(missing=f"run '{name}' has no {file} artifact")
            try:
                payload = json.loads(Path(repo.download_artifacts(file, dst_path=tmp)).read_text())
            except (MlflowException, OSError) as exc:
                complete = False
                return Missing(missing=f"{file} of run '{name}' could not be read: {one_line(exc)}")
            except ValueError as exc:
                return Missing(missing=f"{file} of run '{name}' is not valid JSON: {one_line(exc)}")
            try:
                return parse(_clean(payload))
            except (ValidationError, ValueError, TypeError, AttributeError) as exc:
                return Missing(missing=f"{file} of run '{name}' has an unexpected shape: {_reason(exc)}")

        by_class = load(ROC_CLASSES_FILE, _roc_classes) if ROC_CLASSES_FILE in listed else None
        parts = RunArtifacts(roc=load(ROC_FILE, _roc),
                             confusion=load(REPORT_FILE, lambda payload: _confusion(payload, name)),
                             fairness=load(FAIRNESS_FILE, _fairness),
                             roc_by_class=None if isinstance(by_class, Missing) else by_class)
    return parts, complete


def _roc_classes(payload: Any) -> dict[str, RocCurve]:
    if not isinstance(payload, dict) or not isinstance(payload.get("classes"), dict):
        raise ValueError("roc_curves.json has no object of classes")
    return {str(label): _roc(curve) for label, curve in payload["classes"].items()}


def _roc(payload: Any) -> RocCurve:
    curve = RocCurve.model_validate(payload)
    if len(curve.fpr) != len(curve.tpr):
        raise ValueError(f"{len(curve.fpr)} fpr values but {len(curve.tpr)} tpr values")
    return curve


def _confusion(payload: Any, name: str) -> ConfusionMatrix | Missing:
    if "confusion_matrix" not in payload:
        return Missing(missing=f"run '{name}' has no confusion_matrix in {REPORT_FILE}")
    matrix = payload["confusion_matrix"]
    labels = [str(key) for key, value in payload.items()
              if isinstance(value, dict) and key not in _REPORT_SUMMARIES]
    if not isinstance(matrix, list) or any(not isinstance(row, list) or len(row) != len(matrix) for row in matrix):
        raise ValueError("confusion_matrix is not a square list of lists")
    if len(labels) != len(matrix):
        labels = [str(number) for number in range(len(matrix))]
    return ConfusionMatrix(labels=labels, matrix=matrix)


def _fairness(payload: Any) -> Fairness:
    if not isinstance(payload, dict):
        raise ValueError("fairness.json is not an object of columns")
    columns = {}
    for name, column in payload.items():
        if not isinstance(column, dict):
            raise ValueError(f"fairness column {name!r} is not an object")
        differences = {key: value for key, value in column.items() if key.endswith("_difference")}
        columns[name] = {**column, "differences": differences}
    return Fairness(columns=columns)


def _finite(value: float | None) -> float | None:
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def _clean(payload: Any) -> Any:
    """JSON as read, with NaN and infinities as None (the API's JSON has no NaN)."""
    if isinstance(payload, float):
        return payload if math.isfinite(payload) else None
    if isinstance(payload, list):
        return [_clean(item) for item in payload]
    if isinstance(payload, dict):
        return {key: _clean(value) for key, value in payload.items()}
    return payload


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))
    return one_line(exc)
