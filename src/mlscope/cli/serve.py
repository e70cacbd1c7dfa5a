"""`mlscope serve`: the prediction API for the registered model that holds an alias."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from mlscope.cli.common import console, quiet_mlflow, settings_of, user_errors
from mlscope.config import Settings


def api_app(settings: Settings):  # noqa: ANN201 - FastAPI is imported lazily
    """The API app; MLflow's own HTTP retries are shortened so the API's backoff decides."""
    from mlscope.serving.app import build_api

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    quiet_mlflow()
    app = build_api(settings)
    console.print(f"mlscope API on [bold]http://{settings.host}:{settings.api_port}[/] serving "
                  f"models:/{settings.model_name}@{settings.alias} (docs at /docs); Ctrl-C stops it.")
    return app


def serve(
    ctx: typer.Context,
    model_name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias whose version is served (default production).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port to listen on (default 8001).")] = None,
    poll_seconds: Annotated[float | None, typer.Option(min=0.01, help="Seconds between alias checks.")] = None,
    max_batch_rows: Annotated[int | None, typer.Option(min=1, help="Row limit of /predict/batch.")] = None,
) -> None:
    """Serve predictions (and explanations) from models:/NAME@ALIAS, hot-swapping when the alias moves."""
    from mlscope.cli.servers import run_servers

    overrides = {"model_name": model_name, "alias": alias, "host": host, "api_port": port,
                 "poll_seconds": poll_seconds, "max_batch_rows": max_batch_rows}
    with user_errors():
        settings = settings_of(ctx).model_copy(update={k: v for k, v in overrides.items() if v is not None})
        app = api_app(settings)
    run_servers([(app, settings.host, settings.api_port)])
