"""`mlscope explain`: Shapley contributions of a run's model, as a readable table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlscope.cli.common import console, settings_of, user_errors
from mlscope.errors import BadInput


def _records(text: str) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"--input is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})",
                       field="input") from None
    return parsed if isinstance(parsed, list) else [parsed]


def _uncertainty(standard_error: float | None, exact: bool) -> str:
    """"exact", "±0.0012" (a standard error, or for a summed entry a bound on it) or "approximate"."""
    if standard_error is not None:
        return f"±{standard_error:.2g}"
    return "exact" if exact else "approximate"


def _metadata_line(explanation: Any, cached: bool) -> str:
    meta = explanation.metadata
    errors = explanation.standard_errors
    output = f" of the {meta['model_output']}" if meta.get("model_output") else ""
    if meta.get("exact"):
        kind = f"exact Shapley values{output}"
    elif errors is not None:
        kind = f"APPROXIMATE Shapley values{output}, ±SE per value (largest SE {float(errors.max()):.2g})"
    else:
        kind = f"APPROXIMATE Shapley values{output} (no standard errors recorded)"
    return (f"{kind}: {meta.get('algorithm')}; background {meta.get('background_size')} rows (seed "
            f"{meta.get('background_seed')}); max additivity error {meta.get('max_additivity_error', 0):.1e}; "
            f"computed in {meta.get('seconds', 0):.2f}s" + (" (cached artifact)" if cached else ""))


def explain(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run whose model to explain.")],
    row: Annotated[int | None, typer.Option(help="Position of a test row to explain (0-based).")] = None,
    input_json: Annotated[str | None, typer.Option("--input", help="JSON record (or list) of raw features.")] = None,
    data: Annotated[Path | None, typer.Option(help="CSV of rows to explain (runs without a logged explanation).")] = None,
    compare: Annotated[str | None, typer.Option(help="Another run: compare the two explanations.")] = None,
    output_class: Annotated[str | None, typer.Option(
        "--class", help="Class whose probability to explain (needed for a multiclass model).")] = None,
) -> None:
    """Show a run's Shapley explanation: global importance, one test row, custom input, or a comparison."""
    from mlscope.cli.common import quiet_mlflow
    from mlscope.explain import views
    from mlscope.explain.service import explain_run

    quiet_mlflow()
    settings = settings_of(ctx)
    with user_errors():
        if row is not None and input_json is not None:
            raise BadInput("give either --row or --input, not both", field="row")
        frame = None
        if data is not None:
            from mlscope.data.loader import read_csv

            frame = read_csv(data)
        if compare is not None:
            from mlscope.explain.service import compare_runs

            console.print(_comparison_table(compare_runs(settings, run_id, compare, data=frame), run_id, compare))
            return
        records = _records(input_json) if input_json is not None else None
        explanation, cached = explain_run(settings, run_id, records=records, data=frame, output_class=output_class)
        if records is None and row is None:
            output = explanation.metadata.get("model_output") or "output"
            console.print(f"Global importance of run {run_id} ({len(explanation.row_ids)} rows; {output})")
            table = Table(header_style="bold")
            table.add_column("feature")
            table.add_column("mean |SHAP|", justify="right")
            table.add_column("±SE", justify="right")
            exact = bool(explanation.metadata.get("exact"))
            for item in views.global_importance(explanation):
                name = f"[dim]{item['feature']} (summed)[/]" if item["other"] else item["feature"]
                table.add_row(name, f"{item['mean_abs_shap']:.4f}", _uncertainty(item["standard_error"], exact))
            console.print(table)
        else:
            positions = [row] if row is not None else list(range(len(explanation.row_ids)))
            for position in positions:
                if not 0 <= position < len(explanation.row_ids):
                    raise BadInput(f"--row must be between 0 and {len(explanation.row_ids) - 1}", field="row")
                console.print(_waterfall_table(views.waterfall(explanation, position),
                                               bool(explanation.metadata.get("exact")),
                                               _output_label(explanation.metadata.get("model_output"))))
        console.print(_metadata_line(explanation, cached), highlight=False)


def _fmt(value: Any) -> str:
    if value is None:
        return "missing"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _output_label(model_output: str | None) -> str:
    """ "P(class 1)", "P(class class_2)", "prediction", "log-odds of class 1" ... from the model_output."""
    text = model_output or "probability of class 1"
    if text.startswith("probability of class "):
        return f"P(class {text.removeprefix('probability of class ')})"
    return text


def _waterfall_table(data: dict[str, Any], exact: bool, output: str = "P(class 1)") -> Table:
    table = Table(title=f"Row {data['row_id']}: {output} = {data['output']:.4f}  "
                        f"(base value {data['base_value']:.4f})", title_justify="left", header_style="bold")
    table.add_column("feature")
    table.add_column("value")
    table.add_column("contribution", justify="right")
    table.add_column("±SE", justify="right")
    table.add_column("")
    scale = max((abs(c["shap"]) for c in data["contributions"]), default=0) or 1.0
    for item in data["contributions"]:
        bar = "█" * max(1, round(12 * abs(item["shap"]) / scale)) if item["shap"] else ""
        colour = "green" if item["shap"] > 0 else "red"
        value = "" if item["other"] else _fmt(item["value"])
        table.add_row(item["feature"], value, f"{item['shap']:+.4f}", _uncertainty(item["standard_error"], exact),
                      f"[{colour}]{bar}[/]")
    table.add_row("[bold]sum[/]", "", f"{sum(c['shap'] for c in data['contributions']):+.4f}", "", "")
    return table


def _comparison_table(result: dict[str, Any], champion: str, challenger: str) -> Table:
    """A's top features one by one (plus any of B's top five that A ranks lower, so a shift is never
    hidden), the rest summed into one "other N features" row, as the dashboard does."""
    from mlscope.explain.views import TOP_FEATURES, other_label

    rank_a, rank_b = result["rank_champion"], result["rank_challenger"]
    shown = rank_a[:TOP_FEATURES] if len(rank_a) > TOP_FEATURES + 1 else list(rank_a)
    shown += [f for f in rank_b[:5] if f not in shown]
    rest = [f for f in rank_a if f not in shown]
    table = Table(title=f"Importance ranks: {champion[:8]} (champion) vs {challenger[:8]} (challenger); "
                        f"Spearman {result['spearman']:.2f}, Kendall tau {result['kendall_tau']:.2f}, "
                        f"{result['shared_rows']} shared rows", title_justify="left", header_style="bold")
    for header in ("feature", "rank A", "mean |SHAP| A", "rank B", "mean |SHAP| B", "mean |B - A| per row"):
        table.add_column(header, justify="left" if header == "feature" else "right")
    a, b, moved = (result["mean_abs_shap_champion"], result["mean_abs_shap_challenger"],
                   result["mean_abs_difference"])
    for feature in shown:
        table.add_row(feature, str(rank_a.index(feature) + 1), f"{a[feature]:.4f}", str(rank_b.index(feature) + 1),
                      f"{b[feature]:.4f}", f"{moved.get(feature, float('nan')):.4f}")
    if rest:
        table.add_row(f"[dim]{other_label(len(rest))} (summed)[/]", "", f"{sum(a[f] for f in rest):.4f}", "",
                      f"{sum(b[f] for f in rest):.4f}", f"{sum(moved.get(f, float('nan')) for f in rest):.4f}")
    return table
