"""The web entry point: the runs view of an experiment (a virtual table over the run index) and its
JSON API under /api."""

# No `from __future__ import annotations`: FastAPI must resolve the local dependency `runs_query`.
from importlib import resources
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

import mlscope
from mlscope.config import Settings
from mlscope.tracking.client import make_client
from mlscope.tracking.index import open_run_index
from mlscope.tracking.overview import RunList, RunPageView, experiment_headline, run_list, run_page
from mlscope.web.errors import install_error_handlers

HEADLINE_COLUMNS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")


def create_app(settings: Settings) -> FastAPI:
    """Build the app around one settings object (no globals)."""
    app = FastAPI(title="mlscope", version=mlscope.__version__,
                  description="The runs of MLflow experiments: pages sorted and filtered on the server, "
                              "best run marked.")
    install_error_handlers(app)
    templates = Jinja2Templates(directory=str(resources.files("mlscope.web").joinpath("templates")))
    client = make_client(settings)
    index = open_run_index(settings)
    app.mount("/static", StaticFiles(directory=str(resources.files("mlscope.web").joinpath("static"))), name="static")

    def runs_query(
        experiment: Annotated[str | None, Query(description="MLflow experiment name.")] = None,
        metric: Annotated[str, Query(description="Metric that decides the best run.")] = "roc_auc",
        direction: Annotated[str | None, Query(pattern="^(max|min)$", description="Inferred when omitted.")] = None,
        filter: Annotated[str, Query(description="MLflow search filter.")] = "",  # noqa: A002
    ) -> RunList:
        return run_list(client, experiment or settings.experiment_name, settings.model_name, metric, direction, filter)

    @app.get("/health")
    def health() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    @app.get("/api/runs", response_model=RunList)
    def api_runs(data: Annotated[RunList, Depends(runs_query)]) -> RunList:
        """Every run of an experiment with headline metrics; the best run is flagged."""
        return data

    @app.get("/api/runs/page", response_model=RunPageView)
    def api_run_page(
        experiment: Annotated[str | None, Query(description="MLflow experiment name.")] = None,
        order_by: Annotated[str, Query(description="MLflow order clause, e.g. `metrics.roc_auc DESC`.")] = "",
        filter: Annotated[str, Query(description="MLflow search filter.")] = "",  # noqa: A002
        offset: Annotated[int, Query(ge=0, description="Index of the first run.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000, description="Runs per page.")] = 100,
        metric: Annotated[str, Query(description="Metric that decides the best run.")] = "roc_auc",
        direction: Annotated[str | None, Query(pattern="^(max|min)$", description="Inferred when omitted.")] = None,
    ) -> RunPageView:
        """One page of an experiment's runs, sorted and filtered by the server (fast on 10,000+ runs)."""
        return run_page(index, client, experiment or settings.experiment_name, settings.model_name,
                        order_by=order_by, filter_string=filter, offset=offset, limit=limit, metric=metric,
                        direction=direction)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(f"/experiments/{quote(settings.experiment_name, safe='')}")

    @app.get("/experiments/{experiment}", response_class=HTMLResponse, include_in_schema=False)
    def experiment_view(
        request: Request, experiment: str,
        metric: Annotated[str, Query()] = "roc_auc",
        direction: Annotated[str | None, Query(pattern="^(max|min)$")] = None,
    ) -> HTMLResponse:
        headline = experiment_headline(index, experiment, metric, direction)
        return templates.TemplateResponse(request, "experiment.html", {
            **headline.model_dump(), "settings": settings, "columns": list(HEADLINE_COLUMNS)})

    return app
