"""`mlscope serve`: the prediction API for the registered model that holds an alias."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from mlscope.cli.common import console, err_console, quiet_mlflow, settings_of, user_errors
from mlscope.config import Settings


def prepare_process() -> None:
    """MLflow's own HTTP retries are shortened so the API's backoff decides; MLflow's chatter is off."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    quiet_mlflow()


def banner(settings: Settings, workers: str = "") -> str:
    return (f"mlscope API on [bold]http://{settings.host}:{settings.api_port}[/] serving "
            f"models:/{settings.model_name}@{settings.alias}{workers} (docs at /docs); Ctrl-C stops it.")


def api_app(settings: Settings):  # noqa: ANN201 - FastAPI is imported lazily
    """The API app of a single-process server."""
    from mlscope.serving.app import build_api

    prepare_process()
    app = build_api(settings)
    console.print(banner(settings))
    return app


def serve(
    ctx: typer.Context,
    model_name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias whose version is served (default production).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port to listen on (default 8001).")] = None,
    poll_seconds: Annotated[float | None, typer.Option(min=0.01, help="Seconds between alias checks.")] = None,
    max_batch_rows: Annotated[int | None, typer.Option(min=1, help="Row limit of /predict/batch.")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="Worker processes sharing the port, each with its own copy of the model (default 1).")] = None,
) -> None:
    """Serve predictions (and explanations) from models:/NAME@ALIAS, hot-swapping when the alias moves."""
    from mlscope.cli.servers import run_servers

    overrides = {"model_name": model_name, "alias": alias, "host": host, "api_port": port,
                 "poll_seconds": poll_seconds, "max_batch_rows": max_batch_rows, "api_workers": workers}
    with user_errors():
        settings = settings_of(ctx).model_copy(update={k: v for k, v in overrides.items() if v is not None})
        if settings.api_workers > 1:
            serve_workers(settings)
            return
        app = api_app(settings)
    run_servers([(app, settings.host, settings.api_port)])


def serve_workers(settings: Settings) -> None:
    """`settings.api_workers` processes on one port. This process binds the port, imports the serving
    code once and forks the workers; each builds its own app (loads the model, watches the alias). The
    workers' metrics meet in a temporary folder that is removed when they have all stopped."""
    from mlscope.cli.prefork import WorkerPool, listen
    from mlscope.serving import app as _imported_before_the_fork  # noqa: F401
    from mlscope.serving.metrics import forget_worker

    sock = listen(settings.host, settings.api_port)
    prepare_process()
    with tempfile.TemporaryDirectory(prefix="mlscope-metrics-") as folder:
        metrics_dir = Path(folder)
        pool = WorkerPool(sock, settings.api_workers, partial(_worker, settings, metrics_dir),
                          ended=lambda pid: forget_worker(pid, metrics_dir),
                          report=lambda line: err_console.print(line, highlight=False))
        console.print(banner(settings, f" with {settings.api_workers} worker processes"))
        pool.run()


def _worker(settings: Settings, metrics_dir: Path, index: int, sock: socket.socket,
            started: Callable[[], None]) -> None:
    """One worker: its own app on the shared socket; its log lines name it."""
    from mlscope.cli.servers import serve_socket
    from mlscope.serving.app import build_api

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"worker {index + 1} (pid {os.getpid()}): %(message)s"))
    logging.getLogger("mlscope").addHandler(handler)
    try:
        with user_errors():
            app = build_api(settings, metrics_dir)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    serve_socket(app, sock, started)
