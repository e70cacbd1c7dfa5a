"""An experiment's runs as one overview (best run, registry badges): what `mlscope runs`, the page and
`/api/runs` all show."""

from __future__ import annotations

import math
from datetime import datetime

from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from mlscope.tracking import registry
from mlscope.tracking.index import RunIndex
from mlscope.tracking.runs import best_run, infer_direction, list_runs


class RunSummary(BaseModel):
    run_id: str
    name: str
    status: str
    model_type: str | None
    start_time: int | None
    end_time: int | None
    metrics: dict[str, float]
    registered: str | None
    is_best: bool


class RunList(BaseModel):
    experiment: str
    metric: str
    direction: str
    best_run_id: str | None
    best_reason: str | None
    runs: list[RunSummary]


def format_time(ms: int | None) -> str:
    """An MLflow timestamp (ms since the epoch) as local 'YYYY-MM-DD HH:MM:SS', or '—' when unset."""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "—"


def run_list(client: MlflowClient, experiment: str, model_name: str, metric: str,
             direction: str | None, filter_string: str = "") -> RunList:
    rows = list_runs(client, experiment, filter_string)
    direction = direction or infer_direction(metric)
    best = best_run(rows, metric, direction)
    labels = registry.version_labels(client, model_name)
    runs = [
        RunSummary(
            run_id=r.run_id, name=r.name, status=r.status, model_type=r.params.get("model_type"),
            start_time=r.start_time, end_time=r.end_time,
            metrics={k: v for k, v in r.metrics.items() if not math.isnan(v)},
            registered=labels.get(r.run_id), is_best=best is not None and r.run_id == best.run_id,
        )
        for r in rows
    ]
    reason = f"best by {metric}, {best.metrics[metric]:.4f}" if best else None
    return RunList(experiment=experiment, metric=metric, direction=direction,
                   best_run_id=best.run_id if best else None, best_reason=reason, runs=runs)


class RunPageView(BaseModel):
    """One page of an experiment's runs for the runs view, best run flagged."""

    experiment: str
    total: int
    offset: int
    limit: int
    order_by: str
    best_run_id: str | None
    runs: list[RunSummary]


class ExperimentHeadline(BaseModel):
    experiment: str
    total: int
    metric: str
    direction: str
    best_run_id: str | None
    best_reason: str | None


def experiment_headline(index: RunIndex, experiment: str, metric: str, direction: str | None) -> ExperimentHeadline:
    """How many runs an experiment has and which is best by `metric`, and why."""
    direction = direction or infer_direction(metric)
    experiment_id = index.experiment_id(experiment)
    total = index.page(experiment_id, limit=1).total
    best = index.best(experiment_id, metric, direction)  # type: ignore[arg-type]
    reason = f"best by {metric}, {best.value:.4f}" if best else None
    return ExperimentHeadline(experiment=experiment, total=total, metric=metric, direction=direction,
                              best_run_id=best.run.run_id if best else None, best_reason=reason)


def run_page(index: RunIndex, client: MlflowClient, experiment: str, model_name: str, *, order_by: str,
             filter_string: str, offset: int, limit: int, metric: str, direction: str | None) -> RunPageView:
    """Runs `offset`.. of the experiment's runs matching the filter, in `order_by` order (MLflow syntax)."""
    direction = direction or infer_direction(metric)
    experiment_id = index.experiment_id(experiment)
    page = index.page(experiment_id, filter_string=filter_string, order_by=[order_by] if order_by else [],
                      offset=offset, limit=limit)
    best = index.best(experiment_id, metric, direction)  # type: ignore[arg-type]
    best_id = best.run.run_id if best else None
    labels = registry.version_labels(client, model_name)
    runs = [
        RunSummary(run_id=r.run_id, name=r.run_name or r.run_id[:8], status=r.status,
                   model_type=r.params.get("model_type"), start_time=r.start_time, end_time=r.end_time,
                   metrics={k: v for k, v in r.metrics.items() if not math.isnan(v)},
                   registered=labels.get(r.run_id), is_best=r.run_id == best_id)
        for r in page.runs
    ]
    return RunPageView(experiment=experiment, total=page.total, offset=page.offset, limit=page.limit,
                       order_by=order_by, best_run_id=best_id, runs=runs)
