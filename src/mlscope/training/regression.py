"""Evaluation of a regressor on the test split: predicted-vs-actual and residual plots, residuals by
decile of the prediction, error metrics per fairness slice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mlscope.training.evaluate import sliced  # noqa: E402

SLICE_METRICS = ("mae", "rmse", "mean_residual")
DECILES = 10


def _errors(y_true: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    residual = y_true - prediction
    return {
        "mae": float(np.mean(np.abs(residual))),
        "rmse": float(np.sqrt(np.mean(residual**2))),
        "mean_residual": float(np.mean(residual)),
    }


def fairness(y_true: np.ndarray, prediction: np.ndarray, sensitive: pd.DataFrame
             ) -> tuple[dict[str, Any], dict[str, float]]:
    """MAE, RMSE and mean residual (actual - predicted) per group, and each one's largest between-group
    difference. Returns (report for the JSON artifact, flat metrics to log)."""
    y_true, prediction = np.asarray(y_true, dtype=float), np.asarray(prediction, dtype=float)
    return sliced(sensitive, lambda mask: _errors(y_true[mask], prediction[mask]), SLICE_METRICS)


def residuals_by_decile(y_true: np.ndarray, prediction: np.ndarray) -> pd.DataFrame:
    """Rows grouped by decile of the prediction (fewer groups when predictions repeat): where the model
    over- or under-predicts. Residual = actual - predicted."""
    y_true, prediction = np.asarray(y_true, dtype=float), np.asarray(prediction, dtype=float)
    decile = pd.qcut(pd.Series(prediction).rank(method="first"), DECILES, labels=False, duplicates="drop")
    rows = []
    for number in sorted(decile.unique()):
        mask = (decile == number).to_numpy()
        rows.append({
            "decile": int(number) + 1,
            "rows": int(mask.sum()),
            "prediction_min": float(prediction[mask].min()),
            "prediction_max": float(prediction[mask].max()),
            "mean_prediction": float(prediction[mask].mean()),
            "mean_actual": float(y_true[mask].mean()),
            **_errors(y_true[mask], prediction[mask]),
        })
    return pd.DataFrame(rows)


def plot_predicted_vs_actual(y_true: np.ndarray, prediction: np.ndarray, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.4, 4.2), dpi=100)
    ax.scatter(y_true, prediction, s=12, alpha=0.6, color="#3b6ea8")
    low, high = float(min(np.min(y_true), np.min(prediction))), float(max(np.max(y_true), np.max(prediction)))
    ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("Actual")
    ax.set_ylabel("Predicted")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_residuals(y_true: np.ndarray, prediction: np.ndarray, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.8, 3.8), dpi=100)
    ax.scatter(prediction, np.asarray(y_true) - np.asarray(prediction), s=12, alpha=0.6, color="#3b6ea8")
    ax.axhline(0, linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Residual (actual - predicted)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
