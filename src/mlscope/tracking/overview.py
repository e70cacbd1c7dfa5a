"""An experiment's runs as one overview (best run, registry badges): what `mlscope runs`, the page and
`/api/runs` all show."""

from __future__ import annotations

import math
from datetime import datetime

from mlflow.entities import Experiment, ViewType
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from pydantic import BaseModel

from mlscope.tracking.best_by import BestBy, Source, best_by
from mlscope.tracking.index import TOP_LEVEL, MetricCounts, RunIndex, TreeLevel
from mlscope.tracking.index.models import BestRun
from mlscope.tracking.runs import best_run, infer_direction, list_runs
from mlscope.tracking.version_links import version_labels


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
    params: dict[str, str] = {}
    parent_run_id: str | None = None  # its mlflow.parentRunId tag
    children: int | None = None  # tree pages: how many child runs it has
    contains_best: bool = False  # the best run is below it in the tree


class RunList(BaseModel):
    experiment: str
    metric: str
    direction: str
    metric_source: Source
    metric_reason: str
    best_run_id: str | None
    best_reason: str | None
    runs: list[RunSummary]


def format_time(ms: int | None) -> str:
    """An MLflow timestamp (ms since the epoch) as local 'YYYY-MM-DD HH:MM:SS', or '—' when unset."""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "—"


def run_list(client: MlflowClient, experiment: str, model_name: str, metric: str | None,
             direction: str | None, filter_string: str = "", index: RunIndex | None = None, *,
             headline: str) -> RunList:
    """The experiment's runs (filtered; `index` answers filters MLflow cannot: OR, ...), the best finished run
    by `metric` — by the experiment's default metric (`best_by`) when None."""
    rows = list_runs(client, experiment, filter_string, index)
    counts = None
    if not metric:
        counts = MetricCounts.of(list_runs(client, experiment) if filter_string else rows)
    choice = best_by(counts, headline, metric, direction)
    metric, direction = choice.metric, choice.direction
    best = best_run(rows, metric, direction)
    labels = version_labels(client, model_name)
    runs = [
        RunSummary(
            run_id=r.run_id, name=r.name, status=r.status, model_type=r.params.get("model_type"),
            start_time=r.start_time, end_time=r.end_time,
            metrics={k: v for k, v in r.metrics.items() if not math.isnan(v)},
            registered=labels.get(r.run_id), is_best=best is not None and r.run_id == best.run_id,
        )
        for r in rows
    ]
    for summary, row in zip(runs, rows, strict=True):
        summary.parent_run_id = row.tags.get(MLFLOW_PARENT_RUN_ID)
    reason = f"best by {metric}, {best.metrics[metric]:.4f}" if best else None
    return RunList(experiment=experiment, metric=metric, direction=direction, metric_source=choice.source,
                   metric_reason=choice.reason, best_run_id=best.run_id if best else None, best_reason=reason,
                   runs=runs)


class RunPageView(BaseModel):
    """One page of an experiment's runs for the runs view, best run flagged."""

    experiment: str
    total: int
    offset: int
    limit: int
    order_by: str
    metric: str
    direction: str
    metric_source: Source
    metric_reason: str
    best_run_id: str | None
    best_reason: str | None
    tree: bool
    parent: str | None
    best_path: list[str]
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
    reason = best_reason(best)
    return ExperimentHeadline(experiment=experiment, total=total, metric=metric, direction=direction,
                              best_run_id=best.run.run_id if best else None, best_reason=reason)


def run_page(index: RunIndex, client: MlflowClient, experiment: str, model_name: str, *, order_by: str,
             filter_string: str, offset: int, limit: int, metric: str | None, direction: str | None,
             headline: str, tree: bool = False, parent: str | None = None) -> RunPageView:
    """Runs `offset`.. of the experiment's runs matching the filter, in `order_by` order (MLflow syntax); the
    best of all its runs by `metric` (the experiment's default metric when None) and the runs that hold it in
    the tree. With `tree`, only top-level runs; with `parent`, only that run's children; both with their
    number of children (one more query)."""
    experiment_id = index.experiment_id(experiment)
    level = TreeLevel(parent=parent) if parent else TOP_LEVEL if tree else None
    page = index.page(experiment_id, filter_string=filter_string, order_by=[order_by] if order_by else [],
                      offset=offset, limit=limit, level=level)
    choice = experiment_best_by(index, experiment_id, headline, metric, direction)
    metric, direction = choice.metric, choice.direction
    best = index.best(experiment_id, metric, direction)  # type: ignore[arg-type]
    best_id = best.run.run_id if best else None
    best_path = index.ancestors(experiment_id, best_id) if best and MLFLOW_PARENT_RUN_ID in best.run.tags else []
    counts = None if level is None else index.child_counts(experiment_id, [r.run_id for r in page.runs],
                                                           filter_string=filter_string)
    labels = version_labels(client, model_name)
    runs = [
        RunSummary(run_id=r.run_id, name=r.run_name or r.run_id[:8], status=r.status,
                   model_type=r.params.get("model_type"), start_time=r.start_time, end_time=r.end_time,
                   metrics={k: v for k, v in r.metrics.items() if not math.isnan(v)},
                   registered=labels.get(r.run_id), is_best=r.run_id == best_id, params=r.params)
        for r in page.runs
    ]
    for summary, run in zip(runs, page.runs, strict=True):
        summary.parent_run_id = run.tags.get(MLFLOW_PARENT_RUN_ID)
        summary.children = None if counts is None else counts.get(run.run_id, 0)
        summary.contains_best = run.run_id in best_path
    return RunPageView(experiment=experiment, total=page.total, offset=page.offset, limit=page.limit,
                       order_by=order_by, metric=metric, direction=direction, metric_source=choice.source,
                       metric_reason=choice.reason, best_run_id=best_id, best_reason=best_reason(best),
                       tree=level is not None, parent=parent or None, best_path=best_path, runs=runs)


def experiment_best_by(index: RunIndex, experiment_id: str, headline: str, picked: str | None = None,
                       direction: str | None = None) -> BestBy:
    """The metric that decides the experiment's best run: `picked`, else its default (one counting query)."""
    return best_by(None if picked else index.metric_counts(experiment_id), headline, picked, direction)


def best_reason(best: BestRun | None) -> str | None:
    """Why a run is best, in the words the views show: 'best by roc_auc, 0.848'."""
    return f"best by {best.metric}, {best.value:.4g}" if best else None


class ExperimentSummary(BaseModel):
    experiment_id: str
    name: str
    runs: int
    last_activity: int | None
    metric: str
    direction: str
    metric_source: Source
    metric_reason: str
    best_value: float | None
    best_run_id: str | None
    best_run_name: str | None


class ExperimentList(BaseModel):
    metric: str
    metric_source: Source
    experiments: list[ExperimentSummary]


def experiment_list(client: MlflowClient, index: RunIndex, metric: str | None, headline: str) -> ExperimentList:
    """Every active experiment with its number of runs, last activity and best value of `metric` — when None,
    of each experiment's own default metric (`best_by`)."""
    summaries = []
    for experiment in _all_experiments(client):
        experiment_id = str(experiment.experiment_id)
        latest = index.page(experiment_id, order_by=["attributes.start_time DESC"], limit=1)
        last = latest.runs[0] if latest.runs else None
        activity = [t for t in (experiment.last_update_time, last and (last.end_time or last.start_time)) if t]
        choice = experiment_best_by(index, experiment_id, headline, metric)
        best = index.best(experiment_id, choice.metric, choice.direction)  # type: ignore[arg-type]
        summaries.append(ExperimentSummary(
            experiment_id=experiment_id, name=experiment.name, runs=latest.total,
            last_activity=max(activity) if activity else None, metric=choice.metric, direction=choice.direction,
            metric_source=choice.source, metric_reason=choice.reason, best_value=best.value if best else None,
            best_run_id=best.run.run_id if best else None,
            best_run_name=(best.run.run_name or best.run.run_id[:8]) if best else None))
    summaries.sort(key=lambda e: -(e.last_activity or 0))
    return ExperimentList(metric=metric or headline, metric_source="chosen" if metric else "headline",
                          experiments=summaries)


def _all_experiments(client: MlflowClient) -> list[Experiment]:
    found: list[Experiment] = []
    token = None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


class ExperimentColumns(BaseModel):
    experiment: str
    metrics: list[str]
    params: list[str]
    metric_runs: dict[str, int]
    best_by: BestBy


def experiment_columns(index: RunIndex, experiment: str, headline: str) -> ExperimentColumns:
    """The metric and param keys of the experiment's runs, how many runs have each metric (not NaN), and
    its default "best by" metric."""
    experiment_id = index.experiment_id(experiment)
    metrics, params = index.keys(experiment_id)
    counts = index.metric_counts(experiment_id)
    return ExperimentColumns(experiment=experiment, metrics=metrics, params=params, metric_runs=counts.present,
                             best_by=best_by(counts, headline))
