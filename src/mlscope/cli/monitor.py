"""`mlscope monitor`: the production report of a registered model in the terminal (or as JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mlscope.cli.common import console, quiet_mlflow, settings_of, user_errors

if TYPE_CHECKING:
    from mlscope.monitoring.report import FeatureDrift, ProductionReport

STATUS_STYLE = {"ok": "green", "watch": "yellow", "alert": "bold red", "no_data": "dim"}


def _number(value: float | None, digits: str = ".3f") -> str:
    return "—" if value is None else format(value, digits)


def _p_value(value: float | None) -> str:
    return "—" if value is None else (f"{value:.1e}" if value < 1e-3 else f"{value:.3f}")


def _status(status: str) -> str:
    return f"[{STATUS_STYLE[status]}]{status}[/]"


def _header(report: ProductionReport) -> str:
    served = (f"version {report.served.version} @{report.served.alias}" if report.served else "nothing served")
    return (f"[bold]{report.model}[/] · last {report.window} ({report.since:%Y-%m-%d %H:%M} → "
            f"{report.until:%Y-%m-%d %H:%M} UTC) · {served} · {report.task or 'unknown task'} · "
            f"status {_status(report.status)}")


def _traffic_line(report: ProductionReport) -> str:
    t = report.traffic
    return (f"Traffic: {t.predictions} prediction(s) from {t.requests} request(s); latency p50 "
            f"{_number(t.latency_p50_ms, '.1f')} ms, p99 {_number(t.latency_p99_ms, '.1f')} ms")


def _versions_table(report: ProductionReport) -> Table:
    table = Table(title="Versions: live metrics on the labelled predictions (95% bootstrap interval) vs the test "
                  "split", title_justify="left", header_style="bold")
    for header, justify in (("version", "left"), ("predictions", "right"), ("labelled", "right"),
                            ("reference rows", "right"), ("metric", "left"), ("live", "right"),
                            ("interval", "right"), ("test", "right")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for version in report.versions:
        first = [version.version, str(version.predictions), str(version.labelled),
                 "—" if version.reference_rows is None else str(version.reference_rows)]
        if not version.live_metrics:
            table.add_row(*first, "no feedback yet" if version.labelled == 0 else "—", "", "", "")
        for index, metric in enumerate(version.live_metrics):
            cells = first if index == 0 else ["", "", "", ""]
            interval = ("—" if metric.low is None else f"{metric.low:.3f} – {metric.high:.3f}")
            arrow = "↑" if metric.higher_is_better else "↓"
            table.add_row(*cells, f"{metric.name} {arrow}", _number(metric.value), interval, _number(metric.test_value))
    return table


def _drift_row(table: Table, row: FeatureDrift) -> None:
    missing = ("—" if row.missing_reference is None or row.missing_live is None
               else f"{row.missing_reference:.1%} → {row.missing_live:.1%}")
    table.add_row(row.feature, row.kind, _number(row.psi), row.test or "—", _number(row.statistic),
                  _p_value(row.p_value), _number(row.wasserstein), missing, _status(row.status))


def _drift_table(report: ProductionReport) -> Table | None:
    drift = report.drift
    if drift is None:
        return None
    table = Table(title=f"Drift of version {drift.version}: {drift.rows} live row(s) vs {drift.reference_rows} "
                  "training reference row(s)", title_justify="left", header_style="bold")
    for header in ("feature", "kind", "PSI", "test", "statistic", "p-value", "Wasserstein", "missing", "status"):
        table.add_column(header, justify="left" if header in ("feature", "kind", "test", "status") else "right")
    for row in drift.features:
        _drift_row(table, row)
    outputs = [row for row in (drift.prediction, drift.residuals) if row is not None]
    if outputs:
        table.add_section()
    for row in outputs:  # the output, then a regressor's residuals (actual − prediction) vs its test split
        _drift_row(table, row)
    return table


def _explanation_table(report: ProductionReport) -> Table | None:
    shift = report.explanation_drift
    if shift is None or not shift.features:
        return None
    kind = "exact" if shift.exact else "approximate"
    table = Table(title=f"Explanation drift of version {shift.version}: mean |SHAP| on {shift.rows} live row(s) "
                  f"({kind}) vs the logged test explanation", title_justify="left", header_style="bold")
    for header in ("feature", "training", "live", "ratio", ""):
        table.add_column(header, justify="left" if header in ("feature", "") else "right")
    for row in shift.features:
        table.add_row(row.feature, f"{row.reference:.4f}", f"{row.live:.4f}",
                      "—" if row.ratio is None else f"{row.ratio:.2f}×", row.words)
    return table


def _verdict(report: ProductionReport) -> str | None:
    """One line naming what moved: the flagged features and the largest explanation shift."""
    if report.drift is None:
        return None
    rows = [*report.drift.features, *(row for row in (report.drift.prediction, report.drift.residuals) if row)]
    flagged = [f"{row.feature} ({row.status})" for row in rows if row.status != "ok"]
    if not flagged:
        return "[green]No drift flagged.[/]"
    line = f"Drift flagged: {', '.join(flagged)}."
    shift = report.explanation_drift
    if shift is not None and shift.features:
        line += f" {shift.features[0].words}."
    return line


def print_report(report: ProductionReport) -> None:
    console.print(_header(report), highlight=False)
    for problem in report.problems:
        console.print(f"[yellow]note:[/] {problem}", highlight=False, soft_wrap=True)
    console.print(_traffic_line(report), highlight=False)
    if report.versions:
        console.print(_versions_table(report))
    for table in (_drift_table(report), _explanation_table(report)):
        if table is not None:
            console.print(table)
    verdict = _verdict(report)
    if verdict:
        console.print(verdict, highlight=False)


def monitor(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    window: Annotated[str | None, typer.Option(
        help="How far back to look: 30m, 24h, 7d ... (default: MLSCOPE_MONITOR_WINDOW, 24h).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (the Production view's data).")
                       ] = False,
) -> None:
    """Watch a served model: traffic, drift vs its training data, explanation drift, live metrics."""
    from mlscope.monitoring.report import production_report
    from mlscope.monitoring.window import parse_window
    from mlscope.tracking.client import make_client

    quiet_mlflow()
    settings = settings_of(ctx)
    with user_errors():
        parse_window(window or settings.monitor_window)  # a bad window fails before any work
        if as_json:
            report = production_report(settings, make_client(settings), model, window)
        else:
            with console.status(f"Reading the prediction log of '{model}' and comparing it with training ..."):
                report = production_report(settings, make_client(settings), model, window)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        print_report(report)
