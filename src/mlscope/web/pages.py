"""The dashboard's HTML views. Each is a shell with a stable URL; its module fetches the data from the
JSON API, so a page never fails to open and store problems show in the page's error banner."""

# No `from __future__ import annotations`: FastAPI resolves the Annotated parameters at runtime.
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import plotly
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from mlscope.web.context import Web

router = APIRouter(include_in_schema=False)
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def render(web: Web, request: Request, template: str, **values: Any) -> HTMLResponse:
    return web.templates.TemplateResponse(request, template, {"settings": web.settings, **values})


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/experiments")


@router.get("/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    """Plotly.js from the installed `plotly` package: no CDN."""
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/experiments", response_class=HTMLResponse)
def experiments_view(web: Web, request: Request) -> HTMLResponse:
    return render(web, request, "experiments.html")


@router.get("/experiments/{experiment}", response_class=HTMLResponse)
def runs_view(web: Web, request: Request, experiment: str) -> HTMLResponse:
    return render(web, request, "experiment.html", experiment=experiment)


@router.get("/experiments/{experiment}/compare", response_class=HTMLResponse)
def compare_view(web: Web, request: Request, experiment: str,
                 runs: Annotated[str, Query(description="Comma-separated run ids.")] = "") -> HTMLResponse:
    return render(web, request, "compare.html", experiment=experiment,
                  run_ids=[r for r in runs.split(",") if r.strip()])


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_view(web: Web, request: Request, run_id: str) -> HTMLResponse:
    return render(web, request, "run.html", run_id=run_id)


@router.get("/runs/{run_id}/explain", response_class=HTMLResponse)
def explain_view(web: Web, request: Request, run_id: str,
                 versus: Annotated[str | None, Query(description="Another run to compare with.")] = None
                 ) -> HTMLResponse:
    return render(web, request, "explain.html", run_id=run_id, versus=versus)


@router.get("/models/{name}/versions/{version}/explain")
def explain_version(web: Web, name: str, version: str) -> RedirectResponse:
    """A model version's explanation is its source run's (linked as everywhere: `version_links`)."""
    from mlscope.errors import NotFound
    from mlscope.tracking.registry import get_version
    from mlscope.tracking.version_links import linked_run_id

    run_id = linked_run_id(web.client, get_version(web.client, name, version))
    if run_id is None:
        raise NotFound(f"version {version} of '{name}' comes from no run (its model was logged outside one): "
                       "there is no run explanation to show", field="version")
    return RedirectResponse(f"/runs/{quote(run_id, safe='')}/explain?model={quote(name, safe='')}"
                            f"&version={quote(str(version), safe='')}")


@router.get("/models", response_class=HTMLResponse)
def models_view(web: Web, request: Request) -> HTMLResponse:
    return render(web, request, "models.html")


@router.get("/models/{name}", response_class=HTMLResponse)
def model_view(web: Web, request: Request, name: str) -> HTMLResponse:
    return render(web, request, "model.html", name=name)


PRODUCTION_WINDOWS = ("1h", "24h", "7d")


@router.get("/models/{name}/production", response_class=HTMLResponse)
def production_view(web: Web, request: Request, name: str,
                    window: Annotated[str | None, Query(description="Report window, e.g. 24h.")] = None
                    ) -> HTMLResponse:
    """The served version in production; the page asks /api/models/{name}/production, which checks `window`."""
    chosen = window or web.settings.monitor_window
    windows = PRODUCTION_WINDOWS if chosen in PRODUCTION_WINDOWS else (*PRODUCTION_WINDOWS, chosen)
    return render(web, request, "production.html", name=name, window=chosen, windows=windows)
