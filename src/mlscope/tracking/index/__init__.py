"""Fast run index: rank, filter, page and compare an experiment's runs with MLflow's search semantics.

    with RunIndex("sqlite:///mlflow.db") as index:
        exp = index.experiment_id("titanic")
        page = index.page(exp, filter_string="metrics.accuracy > 0.8", order_by=["metrics.roc_auc DESC"])
        best = index.best(exp, "roc_auc", "max")
        matrix = index.matrix(exp, ["accuracy", "roc_auc"], ["model_type"])
        bundle = index.compare([run.run_id for run in page.runs[:3]])
        top = index.page(exp, level=TOP_LEVEL)  # nested runs: the top level, then one run's children
        children = index.page(exp, level=TreeLevel(parent=top.runs[0].run_id))
        counts = index.child_counts(exp, [run.run_id for run in top.runs])
"""

from __future__ import annotations

from mlscope.tracking.index.models import (
    TOP_LEVEL,
    Backend,
    BestRun,
    Direction,
    IndexedRun,
    MetricCounts,
    RunComparison,
    RunMatrix,
    RunPage,
    TreeLevel,
)
from mlscope.tracking.index.run_index import MAX_PAGE, RunIndex, open_run_index
from mlscope.tracking.index.schema import VERIFIED_REVISIONS

__all__ = [
    "MAX_PAGE", "VERIFIED_REVISIONS", "Backend", "BestRun", "Direction", "IndexedRun", "MetricCounts", "RunComparison",
    "RunIndex", "RunMatrix", "RunPage", "TOP_LEVEL", "TreeLevel", "open_run_index",
]
