"""The `mlscope` command line: one module per command group, joined here."""

from __future__ import annotations

from typing import Annotated

import typer

from mlscope import __version__
from mlscope.cli import demo, explain, monitor, registry, runs, serve, simulate, train, ui, up
from mlscope.cli.common import user_errors
from mlscope.config import load_settings

app = typer.Typer(
    name="mlscope",
    help="Compare, explain, manage and serve MLflow models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlscope {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).")
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """mlscope: train, compare, explain, promote and serve MLflow models."""
    with user_errors():
        ctx.ensure_object(dict)["settings"] = load_settings(tracking_uri=tracking_uri)


app.command()(train.train)
app.command()(runs.runs)
app.command()(explain.explain)
app.command()(registry.promote)
app.command()(registry.history)
app.command()(ui.ui)
app.command()(serve.serve)
app.command()(demo.demo)
app.command()(up.up)
app.command()(monitor.monitor)
app.command()(simulate.simulate)


def main() -> None:
    app()
