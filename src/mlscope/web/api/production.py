"""The production report of a registered model: what its served version sees, how that drifted from its
training data, and how well it does once the truth arrives (see `mlscope.monitoring.report`)."""

# No `from __future__ import annotations`: FastAPI resolves the Annotated parameters at runtime.
from typing import Annotated

from fastapi import APIRouter, Query

from mlscope.monitoring.report import ProductionReport, production_report
from mlscope.web.context import Web

router = APIRouter(prefix="/api", tags=["monitoring"])


@router.get("/models/{name}/production", response_model=ProductionReport)
def production(web: Web, name: str,
               window: Annotated[str | None, Query(description="How far back from now: 30m, 24h, 7d... "
                                                   "(default: the monitor_window setting).", examples=["24h"])] = None
               ) -> ProductionReport:
    """Traffic and latency, input and prediction drift of the served version against its training reference,
    explanation drift, and live metrics per version with bootstrap intervals next to the test metrics."""
    return production_report(web.settings, web.client, name, window)
