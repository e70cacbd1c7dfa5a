"""The web entry point: a page listing an experiment's runs and its JSON twin under /api."""

# No `from __future__ import annotations`: FastAPI must resolve the local dependency `runs_query`.
from importlib import resources
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

import mlscope
from mlscope.config import Settings
from mlscope.tracking.client import make_client
from mlscope.web.errors import install_error_handlers
from mlscope.tracking.overview import RunList, format_time, run_list


def create_app(settings: Settings) -> FastAPI:
    """Build the app around one settings object (no globals)."""
    app = FastAPI(title="mlscope", version=mlscope.__version__,
                  description="Runs of an MLflow experiment, best run marked.")
    install_error_handlers(app)
    templates = Jinja2Templates(directory=str(resources.files("mlscope.web").joinpath("templates")))
    templates.env.filters["when"] = format_time
    client = make_client(settings)

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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request, data: Annotated[RunList, Depends(runs_query)]) -> HTMLResponse:
        return templates.TemplateResponse(request, "runs.html", {"data": data, "settings": settings,
                                                                  "columns": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")})

    return app
