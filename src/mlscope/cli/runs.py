"""`mlscope runs`: a terminal table of an experiment's runs with the best one marked."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mlscope import task
from mlscope.cli.common import console, settings_of, user_errors
from mlscope.errors import BadInput

COLUMNS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")


def runs(
    ctx: typer.Context,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    metric: Annotated[str | None, typer.Option(
        help="Metric that decides the best run; default: the headline metric if most runs have it, else the "
             "metric most runs have.")] = None,
    direction: Annotated[str | None, typer.Option(help="'max' or 'min'; inferred from the name.")] = None,
    filter_string: Annotated[str, typer.Option(
        "--filter", help="MLflow search filter; also OR, NOT, parentheses, BETWEEN and IN "
                         "(e.g. \"params.model_type IN ('svm', 'rf') OR metrics.f1 BETWEEN 0.7 AND 0.9\").")] = "",
    model_name: Annotated[str | None, typer.Option(
        help="Registered model whose badges need no model name (every model's versions are shown).")] = None,
) -> None:
    """List an experiment's runs, best run marked."""
    from mlscope.tracking.client import make_client
    from mlscope.tracking.index import open_run_index
    from mlscope.tracking.overview import format_time, run_list

    settings = settings_of(ctx)
    with user_errors(), open_run_index(settings) as index:
        if direction not in (None, "max", "min"):
            raise BadInput("--direction must be 'max' or 'min'", field="direction")
        name = experiment or settings.experiment_name
        overview = run_list(make_client(settings), name, model_name or settings.model_name, metric, direction,
                            filter_string, index, headline=settings.headline_metric)
        kinds = {task.infer_from_run({}, run.metrics) for run in overview.runs} - {None}
        order = kinds.pop().metric_names if len(kinds) == 1 else COLUMNS  # the runs' task's metrics
        present = [c for c in order if any(c in run.metrics for run in overview.runs)]
        columns = present if overview.metric in present else [*present, overview.metric]
        table = Table(title=f"{len(overview.runs)} run(s) of experiment '{name}'", title_justify="left",
                      header_style="bold")
        for header in ("", "run", "model type", "status", *columns, "registered", "started"):
            table.add_column(header, justify="right" if header in columns else "left")
        for run in overview.runs:
            values = [f"{run.metrics[c]:.3f}" if c in run.metrics else "—" for c in columns]
            table.add_row("★" if run.is_best else "", f"[bold]{run.name}[/]" if run.is_best else run.name,
                          run.model_type or "—", run.status, *values, run.registered or "", format_time(run.start_time))
        console.print(table)
        best = next((run for run in overview.runs if run.is_best), None)
        if best is not None:
            console.print(f"★ {overview.best_reason} ({'higher' if overview.direction == 'max' else 'lower'} "
                          f"is better): {best.name}  (run {best.run_id})")
        elif overview.runs:
            console.print(f"No finished run has the metric '{overview.metric}'.")
        if overview.metric_source != "chosen" and overview.runs:
            console.print(f"Best by {overview.metric}: {overview.metric_reason} (--metric picks another).",
                          markup=False, highlight=False)
