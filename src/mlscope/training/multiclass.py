"""Evaluation of a multiclass classifier on the test split: the N x N confusion matrix (counts and
row-normalised), one-vs-rest ROC curves per class, accuracy and macro-F1 per fairness slice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score, roc_curve  # noqa: E402

from mlscope.training.evaluate import sliced  # noqa: E402

SLICE_METRICS = ("accuracy", "f1_macro")


def predicted_labels(proba: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    return np.asarray(list(classes), dtype=object)[np.argmax(proba, axis=1)]


def fairness(y_true: np.ndarray, y_pred: np.ndarray, sensitive: pd.DataFrame) -> tuple[dict[str, Any], dict[str, float]]:
    """Accuracy and macro-F1 (over the classes seen in the group) per group, and each one's largest
    between-group difference. Returns (report for the JSON artifact, flat metrics to log)."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)

    def metrics_of(mask: np.ndarray) -> dict[str, float]:
        truth, predicted = y_true[mask].tolist(), y_pred[mask].tolist()
        return {"accuracy": float(np.mean(y_true[mask] == y_pred[mask])),
                "f1_macro": float(f1_score(truth, predicted, average="macro", zero_division=0))}

    return sliced(sensitive, metrics_of, SLICE_METRICS)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[Any]) -> dict[str, Any]:
    """Counts (rows: actual, columns: predicted, in `classes` order) and the row-normalised matrix."""
    labels = list(classes)
    counts = confusion_matrix(np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object), labels=labels)
    totals = counts.sum(axis=1, keepdims=True)
    normalized = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    return {"labels": [str(c) for c in labels], "counts": counts.tolist(), "normalized": normalized.round(6).tolist()}


def roc_curves(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> dict[str, Any]:
    """One-vs-rest ROC points per class (classes absent from y_true or alone in it have none)."""
    truth = np.asarray(y_true, dtype=object)
    curves = {}
    for index, label in enumerate(classes):
        positive = (truth == label).astype(int)
        if positive.min() == positive.max():
            continue
        fpr, tpr, thresholds = roc_curve(positive, proba[:, index])
        thresholds = np.where(np.isinf(thresholds), 1.0, thresholds)
        curves[str(label)] = {"fpr": fpr.round(6).tolist(), "tpr": tpr.round(6).tolist(),
                              "thresholds": thresholds.round(6).tolist(),
                              "auc": float(roc_auc_score(positive, proba[:, index]))}
    return {"average": "one-vs-rest", "classes": curves}


def plot_confusion(matrix: dict[str, Any], title: str, path: Path) -> None:
    labels = matrix["labels"]
    size = max(3.6, 0.55 * len(labels) + 1.8)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size), dpi=100)
    for ax, key, name in ((axes[0], "counts", "counts"), (axes[1], "normalized", "share of actual class")):
        values = np.asarray(matrix[key], dtype=float)
        ax.imshow(values, cmap="Blues")
        for (i, j), value in np.ndenumerate(values):
            colour = "white" if value > values.max() / 2 else "black"
            ax.text(j, i, f"{int(value)}" if key == "counts" else f"{value:.2f}", ha="center", va="center",
                    color=colour, fontsize=9)
        ticks = list(range(len(labels)))
        ax.set_xticks(ticks, labels=labels, rotation=45, ha="right")
        ax.set_yticks(ticks, labels=labels)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("Actual")
        ax.set_title(f"{title}: {name}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_roc_curves(curves: dict[str, Any], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=100)
    for label, points in curves["classes"].items():
        ax.plot(points["fpr"], points["tpr"], label=f"{label} (AUC = {points['auc']:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(f"{title} (one-vs-rest)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
