"""`mlscope ui`: serve the web entry point."""

from __future__ import annotations

from typing import Annotated

import typer

from mlscope.cli.common import console, settings_of
from mlscope.config import Settings


def serve_web(settings: Settings) -> None:
    import uvicorn

    from mlscope.web.app import create_app

    console.print(f"mlscope dashboard on [bold]http://{settings.host}:{settings.port}[/] "
                  f"(store {settings.tracking_uri}); Ctrl-C stops it.")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


def ui(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Serve the dashboard and its JSON API."""
    settings = settings_of(ctx).model_copy(update={k: v for k, v in {"host": host, "port": port}.items() if v})
    serve_web(settings)
