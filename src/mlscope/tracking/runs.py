"""Reading an experiment's runs: rows for tables, direction inference, the best run."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlscope.errors import BadInput, NotFound
from mlscope.task import higher_is_better
from mlscope.tracking.index import MAX_PAGE, IndexedRun, RunIndex
from mlscope.tracking.index.boolean_filter import uses_extensions

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
def get_run(client: MlflowClient, run_id: str) -> Run:
    """The run, or NotFound naming `run_id` (also for ids no MLflow store could hold)."""
    if not _RUN_ID.fullmatch(run_id):
        raise NotFound(f"run '{run_id[:80]}' not found", field="run_id")
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise NotFound(f"run '{run_id}' not found", field="run_id") from None
        raise


@dataclass(frozen=True)
class RunRow:
    """The summary of one run that tables and rankings need."""

    run_id: str
    name: str
    status: str
    start_time: int | None
    end_time: int | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_run(cls, run: Run) -> RunRow:
        return cls(
            run_id=run.info.run_id,
            name=run.info.run_name or run.info.run_id[:8],
            status=run.info.status,
            start_time=run.info.start_time,
            end_time=run.info.end_time,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.log-model")},
        )

    @classmethod
    def from_indexed(cls, run: IndexedRun) -> RunRow:
        return cls(
            run_id=run.run_id, name=run.run_name or run.run_id[:8], status=run.status, start_time=run.start_time,
            end_time=run.end_time, params=dict(run.params), metrics=dict(run.metrics),
            tags={k: v for k, v in run.tags.items() if not k.startswith("mlflow.log-model")},
        )


def infer_direction(metric: str) -> str:
    """'min' for loss/error-like metric names, else 'max' (the task module's rule)."""
    return "max" if higher_is_better(metric) else "min"


def experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise NotFound(f"experiment '{name}' not found", field="experiment")
    return experiment.experiment_id


def list_runs(client: MlflowClient, experiment_name: str, filter_string: str = "",
              index: RunIndex | None = None) -> list[RunRow]:
    """Every active run of an experiment (all pages), newest first. A filter with OR, NOT, parentheses,
    BETWEEN or IN on any key is answered by `index` (MLflow's search_runs has no OR)."""
    if index is not None and uses_extensions(filter_string):
        return _indexed_rows(index, experiment_name, filter_string)
    exp_id = experiment_id(client, experiment_name)
    rows: list[RunRow] = []
    token = None
    while True:
        try:
            page = client.search_runs([exp_id], filter_string=filter_string, run_view_type=ViewType.ACTIVE_ONLY,
                                      max_results=1000, order_by=["attributes.start_time DESC"], page_token=token)
        except MlflowException as exc:
            if exc.error_code == "INVALID_PARAMETER_VALUE":
                raise BadInput(f"bad filter: {str(exc.message).splitlines()[0]}", field="filter") from None
            raise
        rows.extend(RunRow.from_run(run) for run in page)
        token = page.token
        if not token:
            return rows


def _indexed_rows(index: RunIndex, experiment_name: str, filter_string: str) -> list[RunRow]:
    exp_id = index.experiment_id(experiment_name)
    rows: list[RunRow] = []
    offset: int | None = 0
    while offset is not None:
        page = index.page(exp_id, filter_string=filter_string, order_by=["attributes.start_time DESC"],
                          offset=offset, limit=MAX_PAGE, view=ViewType.ACTIVE_ONLY)
        rows.extend(RunRow.from_indexed(run) for run in page.runs)
        offset = page.next_offset
    return rows


def best_run(rows: list[RunRow], metric: str, direction: str | None = None) -> RunRow | None:
    """The finished run with the best `metric`; ties go to the earliest started run, then run id."""
    direction = direction or infer_direction(metric)
    candidates = [r for r in rows if r.status == "FINISHED" and not math.isnan(r.metrics.get(metric, math.nan))]
    if not candidates:
        return None
    sign = -1.0 if direction == "max" else 1.0
    return min(candidates, key=lambda r: (sign * r.metrics[metric], r.start_time or 0, r.run_id))
