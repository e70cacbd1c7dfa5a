"""What every command shares: the settings in the context, one-line errors, consoles."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from mlscope.config import Settings
from mlscope.errors import MlscopeError

# Piped output (CI logs, CliRunner) is not a terminal: give tables room instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def settings_of(ctx: typer.Context) -> Settings:
    return ctx.ensure_object(dict)["settings"]


def quiet_mlflow() -> None:
    """MLflow logs table migrations and format advice at INFO/WARNING and draws download bars; the
    CLI shows its own output."""
    import os

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # MLflow reads only this variable
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "View run at" per run, over the bars
    for name in ("mlflow", "alembic", "mlflow.sklearn", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[0]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn known failures into one line on stderr and an exit code, never a traceback."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlscopeError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except MlflowException as exc:
        from mlscope.tracking.client import tracking_failure

        message = tracking_failure(exc) or f"MLflow: {_one_line(exc)}"
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        raise typer.Exit(130) from None
