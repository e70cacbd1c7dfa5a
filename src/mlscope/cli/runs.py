"""`mlscope runs`: a terminal table of an experiment's runs with the best one marked."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mlscope.cli.common import console, settings_of, user_errors
from mlscope.errors import BadInput

if TYPE_CHECKING:
    from mlscope.tracking.runs import RunRow

COLUMNS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")


def _start(row: RunRow) -> str:
    if not row.start_time:
        return "—"
    return datetime.fromtimestamp(row.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")


def runs(
    ctx: typer.Context,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    metric: Annotated[str, typer.Option(help="Metric that decides the best run.")] = "roc_auc",
    direction: Annotated[str | None, typer.Option(help="'max' or 'min'; inferred from the name.")] = None,
    filter_string: Annotated[str, typer.Option("--filter", help="MLflow search filter.")] = "",
    model_name: Annotated[str | None, typer.Option(help="Registered model for version badges.")] = None,
) -> None:
    """List an experiment's runs, best run marked."""
    from mlscope.tracking import registry
    from mlscope.tracking.client import make_client
    from mlscope.tracking.runs import best_run, infer_direction, list_runs

    settings = settings_of(ctx)
    with user_errors():
        if direction not in (None, "max", "min"):
            raise BadInput("--direction must be 'max' or 'min'", field="direction")
        name = experiment or settings.experiment_name
        client = make_client(settings)
        rows = list_runs(client, name, filter_string)
        direction = direction or infer_direction(metric)
        best = best_run(rows, metric, direction)
        versions = registry.version_labels(client, model_name or settings.model_name)
        columns = list(COLUMNS) if metric in COLUMNS else [*COLUMNS, metric]
        table = Table(title=f"{len(rows)} run(s) of experiment '{name}'", title_justify="left", header_style="bold")
        for header in ("", "run", "model type", "status", *columns, "registered", "started"):
            table.add_column(header, justify="right" if header in columns else "left")
        for row in rows:
            is_best = best is not None and row.run_id == best.run_id
            values = [f"{row.metrics[c]:.3f}" if c in row.metrics else "—" for c in columns]
            table.add_row("★" if is_best else "", f"[bold]{row.name}[/]" if is_best else row.name,
                          row.params.get("model_type", "—"), row.status, *values,
                          versions.get(row.run_id, ""), _start(row))
        console.print(table)
        if best is not None:
            console.print(f"★ best by {metric} ({'higher' if direction == 'max' else 'lower'} is better): "
                          f"{best.name} = {best.metrics[metric]:.4f}  (run {best.run_id})")
        elif rows:
            console.print(f"No finished run has the metric '{metric}'.")
