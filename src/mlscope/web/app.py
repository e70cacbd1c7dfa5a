"""The dashboard: HTML views with stable URLs over a JSON API under /api (OpenAPI at /docs)."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

import mlscope
from mlscope.config import Settings
from mlscope.tracking.client import make_client
from mlscope.tracking.index import open_run_index
from mlscope.web import pages
from mlscope.web.api import annotations, compare, explain, production, registry, run, runs, significance
from mlscope.web.api_docs import install_api_docs
from mlscope.web.context import WebContext
from mlscope.web.errors import install_error_handlers
from mlscope.web.security import install_security

# runs first: its /api/runs/page must win over run's /api/runs/{run_id}.
ROUTERS = (runs.router, significance.router, compare.router, run.router, annotations.router, explain.router,
           registry.router, production.router, pages.router)


def create_app(settings: Settings) -> FastAPI:
    """Build the app around one settings object (no globals)."""
    app = FastAPI(title="mlscope dashboard", version=mlscope.__version__,
                  description="Compare MLflow runs, pick the best, explain models, promote them. Every view's "
                              "data comes from this API.", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    install_security(app, settings)
    install_api_docs(app)
    package = resources.files("mlscope.web")
    app.state.web = WebContext(settings=settings, client=make_client(settings), index=open_run_index(settings),
                               templates=Jinja2Templates(directory=str(package.joinpath("templates"))))
    app.mount("/static", StaticFiles(directory=str(package.joinpath("static"))), name="static")

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    return app
