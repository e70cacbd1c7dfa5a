"""The compare view's JSON API: 2..50 runs side by side in one bundle."""

# No `from __future__ import annotations`: FastAPI resolves the Annotated parameters at runtime.
from typing import Annotated

from fastapi import APIRouter, Query

from mlscope.tracking.comparison import ArtifactCache, Comparison, compare_runs, parse_run_ids
from mlscope.web.context import Web, WebContext

router = APIRouter(prefix="/api", tags=["compare"])


def artifact_cache(web: WebContext) -> ArtifactCache:
    """The app's cache of finished runs' chart artifacts."""
    return web.services.setdefault("compare", ArtifactCache())


@router.get("/compare", response_model=Comparison)
def compare(web: Web, runs: Annotated[str, Query(description="2 to 50 comma-separated run ids.")]) -> Comparison:
    """Params (flagged where they differ), metrics (best run per metric), ROC curves, confusion matrices
    and fairness slices of the given runs; a part a run lacks says so in `missing`."""
    return compare_runs(web.index, web.client, artifact_cache(web), parse_run_ids(runs))
