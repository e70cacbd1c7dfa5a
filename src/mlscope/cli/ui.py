"""`mlscope ui`: serve the web entry point."""

from __future__ import annotations

from typing import Annotated

import typer

from mlscope.cli.common import console, settings_of
from mlscope.config import Settings


def web_app(settings: Settings):  # noqa: ANN201 - FastAPI is imported lazily
    from mlscope.tracking.client import service_environment
    from mlscope.web.app import create_app

    service_environment(settings)
    app = create_app(settings)
    console.print(f"mlscope dashboard on [bold]http://{settings.host}:{settings.port}[/] "
                  f"(store {settings.tracking_uri}); Ctrl-C stops it.")
    return app


def ui(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port to listen on.")] = None,
) -> None:
    """Serve the dashboard and its JSON API."""
    settings = settings_of(ctx).model_copy(update={k: v for k, v in {"host": host, "port": port}.items() if v})
    from mlscope.cli.servers import run_servers

    run_servers([(web_app(settings), settings.host, settings.port)])
