"""`mlscope up`: the production stack on this machine without Docker — an MLflow tracking server on the
user's database, then the dashboard and the prediction API, each a child process, all talking HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlscope.cli.common import console, err_console, settings_of, user_errors
from mlscope.config import Settings
from mlscope.errors import BadInput, TrackingUnavailable, one_line
from mlscope.stack.supervisor import ComponentFailed, Component, Supervisor
from mlscope.stack.tracking_server import TrackingServer, local_url

DIALECTS = ("postgresql", "mysql", "mssql", "sqlite")
# Variables that would point a child at another store than the server `up` started.
STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLSCOPE_TRACKING_URI", "MLSCOPE_REGISTRY_URI")


def display_uri(uri: str) -> str:
    """The database URI with its password hidden (for messages and the summary)."""
    from sqlalchemy.engine import make_url

    return make_url(uri).render_as_string(hide_password=True)


def check_backend_uri(uri: str | None) -> str:
    """The backend store URI if MLflow can use it as a database; else a one-line BadInput."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not uri:
        raise BadInput("mlscope up needs the tracking server's database: --backend-store-uri "
                       "postgresql://USER[:PASSWORD]@HOST:5432/DB (or MLSCOPE_BACKEND_STORE_URI)",
                       field="backend_store_uri")
    try:
        dialect = make_url(uri).get_backend_name()
    except ArgumentError:
        raise BadInput(f"--backend-store-uri is not a database URI: {uri!r} "
                       "(expected postgresql://USER@HOST:5432/DB)", field="backend_store_uri") from None
    if dialect not in DIALECTS:
        raise BadInput(f"--backend-store-uri must be a {', '.join(DIALECTS)} database, not {dialect!r}",
                       field="backend_store_uri")
    return uri


def check_database(uri: str, timeout_seconds: int = 5) -> None:
    """Connect once, so an unreachable database is one line now rather than the tracking server
    retrying for minutes in its log. SQLite files are created by MLflow and need no check."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    url = make_url(uri)
    if url.get_backend_name() == "sqlite":
        return
    connect_args = {"connect_timeout": timeout_seconds} if url.get_backend_name() in ("postgresql", "mysql") else {}
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - driver errors have no common base class worth naming
        reason = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
        raise TrackingUnavailable(f"cannot connect to {display_uri(uri)}: {one_line(reason.splitlines()[0])}",
                                  field="backend_store_uri") from None


def check_ports_free(host: str, ports: dict[str, int]) -> None:
    """A one-line BadInput naming the option when two options share a port or one is taken."""
    seen: dict[int, str] = {}
    for option, port in ports.items():
        field = option.lstrip("-").replace("-", "_")
        if port in seen:
            raise BadInput(f"{option} and {seen[port]} are both {port}", field=field)
        seen[port] = option
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                raise BadInput(f"port {port} ({option}) is already in use on {host}", field=field) from None


def child_env(tracking_url: str, monitor_dir: Path) -> dict[str, str]:
    """The environment of a child: this one, pointed at the started server only, and at one prediction
    log folder (absolute), so the API writes where the dashboard reads whatever the settings came from."""
    import os

    env = {key: value for key, value in os.environ.items() if key not in STORE_VARIABLES}
    env["MLFLOW_TRACKING_URI"] = tracking_url
    env["MLSCOPE_MONITOR_DIR"] = str(monitor_dir.resolve())
    return env


def mlscope_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlscope", *args]


def summary(rows: list[tuple[str, str, int, Path]], backend: str, artifacts: Path, monitor_dir: Path) -> Table:
    table = Table(title="mlscope up: everything is healthy (Ctrl-C stops all)", title_justify="left",
                  header_style="bold")
    for column in ("component", "URL", "pid", "log"):
        table.add_column(column)
    for name, url, pid, log in rows:
        table.add_row(name, url, str(pid), str(log))
    table.caption = (f"store {display_uri(backend)}, artifacts {artifacts.resolve()}, prediction log "
                     f"{monitor_dir.resolve()}")
    table.caption_justify = "left"
    return table


def _start(supervisor: Supervisor, component: Component, seconds: float) -> int:
    with console.status(f"starting {component.name} ({component.health_url})"):
        took = supervisor.start(component, seconds)
    console.print(f"[green]✓[/] {component.name} healthy after {took:.1f}s")
    return component.process.pid if component.process else 0


def _train(settings: Settings, env: dict[str, str], retrain: bool) -> None:
    from mlscope.cli.demo import count_runs

    existing = 0 if retrain else count_runs(settings)
    if existing:
        console.print(f"Experiment '{settings.experiment_name}' already has {existing} run(s); skipping "
                      "training (--retrain trains again, --no-train never trains).")
        return
    # In the foreground, sharing the terminal: the user sees its progress bars and summary table.
    done = subprocess.run(mlscope_argv("train", "--promote"), env=env, check=False)
    if done.returncode != 0:
        raise BadInput(f"training failed (exit status {done.returncode}); the servers were stopped",
                       field="train")


def up(
    ctx: typer.Context,
    backend_store_uri: Annotated[str | None, typer.Option(
        help="Database of the MLflow tracking server, e.g. postgresql://postgres@127.0.0.1:5432/mlflow.")] = None,
    artifacts_destination: Annotated[Path | None, typer.Option(
        help="Folder the tracking server keeps artifacts in (default ./mlartifacts).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface all three servers bind to.")] = None,
    mlflow_port: Annotated[int | None, typer.Option(min=1, max=65535, help="Tracking server port (5000).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Dashboard port (8000).")] = None,
    api_port: Annotated[int | None, typer.Option(min=1, max=65535, help="Prediction API port (8001).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Tracking server uvicorn workers (1).")] = None,
    api_workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="Prediction API worker processes (`mlscope serve --workers`, 1).")] = None,
    train: Annotated[bool, typer.Option(help="Train and promote when the experiment has no runs yet.")] = True,
    retrain: Annotated[bool, typer.Option(help="Train even if the experiment has runs.")] = False,
    log_dir: Annotated[Path | None, typer.Option(help="Folder of the three logs (default ./mlscope-logs).")] = None,
    monitor_dir: Annotated[Path | None, typer.Option(
        help="Prediction log and feedback the API writes and the dashboard reads (default ./mlscope-monitoring).")
    ] = None,
    ready_timeout: Annotated[float, typer.Option(min=1, help="Seconds each server may take to be healthy.")] = 120,
) -> None:
    """Start an MLflow tracking server on your database, train if it is empty, then the dashboard and the
    prediction API; wait until each is healthy, print their URLs, stop all on Ctrl-C."""
    overrides = {"backend_store_uri": backend_store_uri, "artifacts_destination": artifacts_destination,
                 "host": host, "mlflow_port": mlflow_port, "port": port, "api_port": api_port,
                 "mlflow_workers": workers, "api_workers": api_workers, "log_dir": log_dir,
                 "monitor_dir": monitor_dir}
    settings = settings_of(ctx).model_copy(update={k: v for k, v in overrides.items() if v is not None})
    with user_errors():
        backend = check_backend_uri(settings.backend_store_uri)
        check_ports_free(settings.host, {"--mlflow-port": settings.mlflow_port, "--port": settings.port,
                                         "--api-port": settings.api_port})
        check_database(backend)
    server = TrackingServer(backend, settings.artifacts_destination.resolve(), host=settings.host,
                            port=settings.mlflow_port, workers=settings.mlflow_workers)
    env = child_env(server.url, settings.monitor_dir)
    settings = settings.model_copy(update={"tracking_uri": server.url, "registry_uri": None})
    logs = settings.log_dir
    components = [
        Component("dashboard", mlscope_argv("ui", "--host", settings.host, "--port", str(settings.port)),
                  f"{local_url(settings.host, settings.port)}/health", logs / "dashboard.log"),
        Component("prediction API", mlscope_argv("serve", "--host", settings.host, "--port", str(settings.api_port),
                                                 "--workers", str(settings.api_workers)),
                  f"{local_url(settings.host, settings.api_port)}/health", logs / "api.log"),
    ]
    console.print(f"Tracking server on {display_uri(backend)} (artifacts in {server.artifacts_destination}); "
                  f"logs in {logs.resolve()}")
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the children too, like Ctrl-C
    try:
        _run(Supervisor(env), server, components, settings, env, train or retrain, retrain, ready_timeout)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(supervisor: Supervisor, server: TrackingServer, components: list[Component], settings: Settings,
         env: dict[str, str], train: bool, retrain: bool, ready_timeout: float) -> None:
    """Start the server, train, start the rest, then wait; whatever ends it stops every child."""
    rows: list[tuple[str, str, int, Path]] = []
    try:
        mlflow = Component("MLflow tracking server", server.command(), f"{server.url}/health",
                           settings.log_dir / "mlflow.log", env=server.environment())
        rows.append((mlflow.name, server.url, _start(supervisor, mlflow, ready_timeout), mlflow.log))
        if train:
            with user_errors():
                _train(settings, env, retrain)
            supervisor.check()
        for component in components:
            base = component.health_url.removesuffix("/health")
            rows.append((component.name, base, _start(supervisor, component, ready_timeout), component.log))
        console.print(summary(rows, server.backend_store_uri, settings.artifacts_destination, settings.monitor_dir))
        supervisor.wait()
    except ComponentFailed as failure:
        err_console.print(f"[bold red]error:[/] {failure.message}", highlight=False, soft_wrap=True)
        log_tail = failure.log_tail()
        if log_tail:
            err_console.print(f"--- last lines of {failure.log} ---", highlight=False)
            err_console.print(log_tail, highlight=False, markup=False, soft_wrap=True)
        else:
            err_console.print(f"--- {failure.log} is empty ---", highlight=False)
        _stop(supervisor)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("Stopping…")
        _stop(supervisor)
    except BaseException:  # typer.Exit from a failed training, or anything unexpected
        _stop(supervisor)
        raise


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(supervisor: Supervisor) -> None:
    names = [component.name for component in reversed(supervisor.components)]
    if not names:
        return
    with console.status(f"stopping {', '.join(names)}"):
        killed = supervisor.stop_all()
    extra = f" ({', '.join(killed)} killed after the grace period)" if killed else ""
    console.print(f"Stopped {', '.join(names)}{extra}.")
