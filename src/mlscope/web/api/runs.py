"""Experiments and their runs: the experiments list, pages of runs, column keys."""

# No `from __future__ import annotations`: FastAPI resolves the Annotated parameters at runtime.
from typing import Annotated

from fastapi import APIRouter, Query

from mlscope.tracking.overview import (ExperimentColumns, ExperimentList, RunList, RunPageView, experiment_columns,
                                       experiment_list, run_list, run_page)
from mlscope.web.context import Web

router = APIRouter(prefix="/api", tags=["runs"])
FILTER_HELP = ("MLflow search filter; also OR, NOT, parentheses, BETWEEN and IN, e.g. "
               "`metrics.f1 BETWEEN 0.7 AND 0.9 AND (params.model_type IN ('svm', 'rf') OR tags.stage = 'prod')`.")
Direction = Annotated[str | None, Query(pattern="^(max|min)$", description="Inferred from the metric when omitted.")]
Metric = Annotated[str | None, Query(description="Metric that decides the best run; when omitted, the experiment's "
                                                 "default: the headline metric if most runs have it, else the metric "
                                                 "most runs have.")]


@router.get("/experiments", response_model=ExperimentList)
def experiments(
    web: Web,
    metric: Metric = None,
) -> ExperimentList:
    """Every active experiment: runs, last activity, the metric that decides its best run, best value and run."""
    return experiment_list(web.client, web.index, metric, web.settings.headline_metric)


@router.get("/experiments/{experiment}/columns", response_model=ExperimentColumns)
def columns(web: Web, experiment: str) -> ExperimentColumns:
    """The metric and param keys the experiment's runs have (for the column chooser), its default best-by metric."""
    return experiment_columns(web.index, experiment, web.settings.headline_metric)


@router.get("/runs", response_model=RunList)
def runs(
    web: Web,
    experiment: Annotated[str | None, Query(description="MLflow experiment name.")] = None,
    metric: Metric = None,
    direction: Direction = None,
    filter: Annotated[str, Query(description=FILTER_HELP)] = "",  # noqa: A002
) -> RunList:
    """Every run of an experiment with its metrics; the best run is flagged."""
    settings = web.settings
    return run_list(web.client, experiment or settings.experiment_name, settings.model_name, metric, direction, filter,
                    web.index, headline=settings.headline_metric)


@router.get("/runs/page", response_model=RunPageView)
def runs_page(
    web: Web,
    experiment: Annotated[str | None, Query(description="MLflow experiment name.")] = None,
    order_by: Annotated[str, Query(description="MLflow order clause, e.g. `metrics.roc_auc DESC`.")] = "",
    filter: Annotated[str, Query(description=FILTER_HELP)] = "",  # noqa: A002
    offset: Annotated[int, Query(ge=0, description="Index of the first run.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Runs per page.")] = 100,
    metric: Metric = None,
    direction: Direction = None,
    tree: Annotated[bool, Query(description="Only top-level runs (no parent run in the experiment), each with "
                                            "its number of child runs.")] = False,
    parent: Annotated[str | None, Query(description="Only the child runs of this run (its nested runs), each "
                                                    "with its number of children.")] = None,
) -> RunPageView:
    """One page of an experiment's runs, sorted and filtered by the server (fast on 10,000+ runs); or one level
    of the tree of nested runs (`tree`, `parent`). The best run is over all runs, children included."""
    settings = web.settings
    return run_page(web.index, web.client, experiment or settings.experiment_name, settings.model_name,
                    order_by=order_by, filter_string=filter, offset=offset, limit=limit,
                    metric=metric, direction=direction, headline=settings.headline_metric, tree=tree, parent=parent)
