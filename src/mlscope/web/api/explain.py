"""The explain view's JSON API: a run's stored SHAP explanation as chart data, stored rows, live what-if
records (kept explainers, nothing logged), two runs compared, and computing a missing explanation."""

# No `from __future__ import annotations`: FastAPI resolves the Annotated parameters at runtime.
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from mlscope.explain.dashboard import (ComparisonView, Dependence, ExplanationView, RowExplanation, WhatIfView,
                                       compare_view, compute_explanation, dependence_view, explanation_view,
                                       row_view, what_if_view)
from mlscope.explain.live import ExplainSessions
from mlscope.web.context import Mutation, Web, WebContext

router = APIRouter(prefix="/api", tags=["explain"])
ClassQuery = Annotated[str | None, Query(alias="class", min_length=1, max_length=250,
                                         description="A multiclass run: the class whose explanation to use.")]
SERVICE = "explain"
_CREATING = threading.Lock()


class WhatIfRequest(BaseModel):
    record: dict[str, Any] = Field(description="Raw feature values; a missing feature is a missing value.",
                                   examples=[{"Pclass": 1, "Sex": "female", "Age": 28, "SibSp": 0, "Parch": 0,
                                              "Fare": 100, "Embarked": "S"}])


def sessions(web: WebContext) -> ExplainSessions:
    """The app's explainer sessions (an LRU of a few runs), created on first use."""
    with _CREATING:
        if SERVICE not in web.services:
            web.services[SERVICE] = ExplainSessions(web.settings, web.client)
        return web.services[SERVICE]


@router.get("/runs/{run_id}/explanation", response_model=ExplanationView)
def explanation(web: Web, run_id: str, output_class: ClassQuery = None) -> ExplanationView:
    """The run's stored test explanation: metadata, global importance, beeswarm, features and rows; or what
    is missing and whether the dashboard can compute it. Multiclass runs: one class's (`class`)."""
    return explanation_view(sessions(web), run_id, output_class=output_class)


@router.post("/runs/{run_id}/explanation", response_model=ExplanationView, dependencies=[Mutation])
def compute(web: Web, run_id: str) -> ExplanationView:
    """Compute and log the explanation of a run that has none (from the shipped Titanic data when the model
    takes its columns, else the model's input example)."""
    return compute_explanation(sessions(web), run_id)


@router.get("/runs/{run_id}/explanation/dependence", response_model=Dependence)
def dependence(web: Web, run_id: str,
               feature: Annotated[str, Query(description="Raw feature name, e.g. `Age`.")],
               output_class: ClassQuery = None) -> Dependence:
    """A feature's value against its contribution per row, with the feature it interacts with most."""
    return dependence_view(sessions(web), run_id, feature, output_class)


@router.get("/runs/{run_id}/explanation/rows/{row_id}", response_model=RowExplanation)
def row(web: Web, run_id: str, row_id: str, output_class: ClassQuery = None) -> RowExplanation:
    """One explained row: its feature values and its waterfall."""
    return row_view(sessions(web), run_id, row_id, output_class)


@router.post("/runs/{run_id}/explanation/what-if", response_model=WhatIfView)
def what_if(web: Web, run_id: str, body: WhatIfRequest, output_class: ClassQuery = None) -> WhatIfView:
    """Explain a hand-made record live (milliseconds; nothing is logged)."""
    return what_if_view(sessions(web), run_id, body.record, output_class)


@router.get("/explanations/compare", response_model=ComparisonView)
def compare(web: Web, a: Annotated[str, Query(description="A run id.")],
            b: Annotated[str, Query(description="Another run id.")]) -> ComparisonView:
    """Two runs' global importance side by side, with Spearman and Kendall rank agreement."""
    return compare_view(sessions(web), a, b)
