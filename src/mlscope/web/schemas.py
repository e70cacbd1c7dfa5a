"""Response models of the web entry point's JSON API."""

from __future__ import annotations

from pydantic import BaseModel


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
