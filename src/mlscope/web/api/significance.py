"""Is the difference between two runs real? The significance panel of the compare view."""

# No `from __future__ import annotations`: FastAPI resolves the Annotated parameters at runtime.
from typing import Annotated

from fastapi import APIRouter, Query

from mlscope.stats.two_runs import Significance, SignificanceCache
from mlscope.web.context import Web

router = APIRouter(prefix="/api", tags=["compare"])
RunId = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$", description="A run id.")]


@router.get("/compare/significance", response_model=Significance)
def significance(
    web: Web,
    a: RunId,
    b: RunId,
    metric: Annotated[str | None, Query(min_length=1, max_length=250, pattern=r"^[\w.\-/ ]+$",
                                        description="Metric of the CV fold test; default: the runs' task's headline "
                                                    "(ROC-AUC for classifiers, RMSE for regressors).")] = None,
) -> Significance:
    """Is run A's difference from run B real? The paired tests of the runs' task, each with the reason when
    it cannot run: the corrected resampled t-test (Nadeau–Bengio) on the CV folds of `metric`, then on the
    test-split predictions — binary: a paired bootstrap of the ROC-AUC difference and McNemar's test;
    multiclass: a paired bootstrap of the macro-F1 difference and McNemar's test; regression: a paired
    bootstrap of the RMSE difference and paired t-tests on per-row squared and absolute errors.
    Estimates are A minus B; the verdict leads with the bootstrap (α = 0.05). Finished runs are cached."""
    cache = web.services.setdefault("significance", SignificanceCache())
    return cache.compare(web.client, a, b, metric)
