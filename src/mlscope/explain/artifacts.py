"""The logged explanation format (versioned JSON) and its PNG summary plots.

`explanations/<name>.json`, format "mlscope.shap/1":
{
  "format": "mlscope.shap/1",
  "features": [names...],                  # raw input features, model order
  "base_value": float,                     # mean model output over the background
  "row_ids": [...],                        # e.g. PassengerId, or row numbers
  "data": [[raw value per feature] ...],   # the explained rows (null = missing)
  "values": [[phi per feature] ...],       # contributions to P(class 1), same shape as data
  "outputs": [float ...],                  # the model's P(class 1) per row
  "standard_errors": [[se per feature] ...] or null,  # approximate values only; absent in older files
  "background": [[raw value per feature] ...],
  "metadata": {algorithm, exact, evaluator, model_output, background_size, background_seed,
               rows, model_evaluations, max_additivity_error, seconds, model_uri?, run_id?}
}
Readers must check "format"; a new major version changes the name."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mlscope.explain.shapley import Explanation  # noqa: E402

FORMAT = "mlscope.shap/1"
FOLDER = "explanations"
TEST_SPLIT = "test"


def plain_value(value: Any) -> Any:
    """A JSON-ready scalar: numpy numbers as Python numbers, every missing value as None."""
    if value is None:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _rows(frame: pd.DataFrame) -> list[list[Any]]:
    return [[plain_value(v) for v in row] for row in frame.itertuples(index=False, name=None)]


def to_json(explanation: Explanation, background: pd.DataFrame) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "features": explanation.features,
        "base_value": explanation.base_value,
        "row_ids": [plain_value(r) for r in explanation.row_ids],
        "data": _rows(explanation.data),
        "values": explanation.values.tolist(),
        "outputs": explanation.outputs.tolist(),
        "standard_errors": None if explanation.standard_errors is None else
        np.asarray(explanation.standard_errors, dtype=float).tolist(),
        "background": _rows(background[explanation.features]),
        "metadata": {k: plain_value(v) for k, v in explanation.metadata.items()},
    }


def _frame(rows: list[list[Any]], features: list[str]) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for j, feature in enumerate(features):
        values = [row[j] for row in rows]
        if all(v is None or isinstance(v, (int, float)) for v in values):
            columns[feature] = np.array([np.nan if v is None else v for v in values], dtype="float64")
        else:
            columns[feature] = pd.Series(values, dtype=object).where(pd.notna(pd.Series(values, dtype=object)), np.nan)
    return pd.DataFrame(columns, columns=features)


def from_json(payload: dict[str, Any]) -> tuple[Explanation, pd.DataFrame]:
    """(explanation, background) from a parsed artifact; ValueError on an unknown format."""
    if payload.get("format") != FORMAT:
        raise ValueError(f"unsupported explanation format {payload.get('format')!r} (expected {FORMAT})")
    features = list(payload["features"])
    errors = payload.get("standard_errors")
    explanation = Explanation(
        features=features,
        values=np.asarray(payload["values"], dtype=float).reshape(-1, len(features)),
        base_value=float(payload["base_value"]),
        outputs=np.asarray(payload["outputs"], dtype=float),
        data=_frame(payload["data"], features),
        row_ids=list(payload["row_ids"]),
        metadata=dict(payload.get("metadata", {})),
        standard_errors=None if errors is None else np.asarray(errors, dtype=float).reshape(-1, len(features)),
    )
    return explanation, _frame(payload["background"], features)


def write(explanation: Explanation, background: pd.DataFrame, folder: Path, name: str = TEST_SPLIT) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(to_json(explanation, background)))
    return path


def read(path: Path) -> tuple[Explanation, pd.DataFrame]:
    return from_json(json.loads(path.read_text()))


def plot_importance(explanation: Explanation, title: str, path: Path) -> None:
    """Mean |SHAP| bars: the top features and one bar for the sum of the rest (see views.global_importance),
    with the standard-error bound as error bars when the values are approximate."""
    from mlscope.explain.views import global_importance

    items = global_importance(explanation)[::-1]
    errors = [item["standard_error"] for item in items]
    fig, ax = plt.subplots(figsize=(5.0, 0.35 * len(items) + 1.3), dpi=100)
    ax.barh([item["feature"] for item in items], [item["mean_abs_shap"] for item in items],
            xerr=None if None in errors else errors,
            color=["#9aa3ad" if item["other"] else "#3b6ea8" for item in items])
    ax.set_xlabel("mean |SHAP value| (effect on predicted probability)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _colour_scale(column: pd.Series) -> np.ndarray:
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().sum() == column.notna().sum() and numeric.notna().any():
        low, high = np.nanpercentile(numeric, [5, 95])
        return np.clip((numeric.to_numpy(dtype=float) - low) / ((high - low) or 1.0), 0, 1)
    codes, _ = pd.factorize(column.astype(str))
    return codes / max(codes.max(), 1)


def plot_beeswarm(explanation: Explanation, title: str, path: Path, seed: int = 0) -> None:
    """One row of dots per top feature; beyond them, one grey row of each explained row's summed rest."""
    from mlscope.explain.views import beeswarm

    entries = beeswarm(explanation)["features"][::-1]
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(6.0, 0.45 * len(entries) + 1.4), dpi=100)
    points = None
    for position, entry in enumerate(entries):
        jitter = rng.uniform(-0.3, 0.3, len(entry["shap"]))
        if entry["other"]:
            ax.scatter(entry["shap"], position + jitter, color="#9aa3ad", s=9, alpha=0.8, linewidths=0)
            continue
        colours = _colour_scale(explanation.data[entry["feature"]])
        points = ax.scatter(entry["shap"], position + jitter, c=colours, cmap="coolwarm", s=9,
                            vmin=0, vmax=1, alpha=0.8, linewidths=0)
    ax.set_yticks(range(len(entries)), labels=[entry["feature"] for entry in entries])
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("SHAP value (effect on predicted probability)")
    ax.set_title(title, fontsize=10)
    if points is not None:
        bar = fig.colorbar(points, ax=ax, ticks=[0, 1], pad=0.01)
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("feature value")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
