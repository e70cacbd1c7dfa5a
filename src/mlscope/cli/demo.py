"""`mlscope demo`: train the built-in experiments (once), promote the best, open the dashboard."""

from __future__ import annotations

from typing import Annotated

import typer

from mlscope.cli.common import console, settings_of, user_errors
from mlscope.cli.train import demo_settings, run_training
from mlscope.cli.ui import web_app
from mlscope.config import Settings


def count_runs(settings: Settings) -> int:
    """Runs in the settings' experiment (0 when it does not exist yet)."""
    from mlscope.errors import NotFound
    from mlscope.tracking.client import make_client
    from mlscope.tracking.runs import list_runs

    try:
        return len(list_runs(make_client(settings), settings.experiment_name))
    except NotFound:
        return 0


def demo(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option(help="Shipped dataset: titanic (binary), diabetes (regression), "
                                               "wine (multiclass).")] = "titanic",
    serve: Annotated[bool, typer.Option(help="Start the dashboard and the prediction API after training.")] = True,
    retrain: Annotated[bool, typer.Option(help="Train again even if the experiment has runs.")] = False,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Dashboard port.")] = None,
    api_port: Annotated[int | None, typer.Option(min=1, max=65535, help="Prediction API port.")] = None,
) -> None:
    """Train a shipped dataset's experiments (Titanic's four by default), promote the best to production,
    serve the dashboard and the prediction API."""
    from mlscope.data.loader import load_demo
    from mlscope.training import workers

    workers.warm_up()
    settings = settings_of(ctx)
    settings = settings.model_copy(update={k: v for k, v in {"port": port, "api_port": api_port}.items() if v})
    settings = demo_settings(settings, dataset)
    with user_errors():
        data = load_demo(dataset)
        existing = 0 if retrain else count_runs(settings)
        if existing:
            console.print(f"Experiment '{settings.experiment_name}' already has {existing} run(s); "
                          "skipping training (use --retrain to train again).")
        else:
            report = run_training(settings, data, None, None, None, promote=True)
            if report.failed:
                raise typer.Exit(1)
    if serve:
        from mlscope.cli.serve import api_app
        from mlscope.cli.servers import run_servers

        with user_errors():
            apps = [(web_app(settings), settings.host, settings.port), (api_app(settings), settings.host, settings.api_port)]
        run_servers(apps)
