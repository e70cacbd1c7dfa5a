"""Evaluation in the main process: fairness slices, importances, ROC points, reports and plots.
(Metrics and the fits themselves are in `fitting.py`, which the worker processes import.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import classification_report, confusion_matrix, roc_auc_score, roc_curve  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from mlscope import task as tasks  # noqa: E402
from mlscope.task import Task  # noqa: E402
from mlscope.training.features import aggregate_by_raw_feature, output_groups  # noqa: E402

SLICE_METRICS = ("accuracy", "precision", "recall", "f1", "selection_rate")


def _slug(value: object) -> str:
    text = str(value).strip().lower()
    return "".join(ch if ch.isalnum() else "_" for ch in text) or "missing"


def _rate(mask: np.ndarray, values: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")


def _group_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    tp = int(((y_true == 1) & (y_pred == 1)).sum())
    fp = int(((y_true == 0) & (y_pred == 1)).sum())
    fn = int(((y_true == 1) & (y_pred == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": float((y_true == y_pred).mean()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "selection_rate": float(y_pred.mean()),
    }


def parity_differences(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """fairlearn's demographic-parity difference (spread of selection rates across groups) and
    equalized-odds difference (the larger spread of true-positive and false-positive rates)."""
    labels = np.unique(groups)
    selection = [y_pred[groups == g].mean() for g in labels]
    tpr = [_rate((groups == g) & (y_true == 1), y_pred) for g in labels]
    fpr = [_rate((groups == g) & (y_true == 0), y_pred) for g in labels]
    spread = lambda values: float(np.nanmax(values) - np.nanmin(values))  # noqa: E731
    return spread(selection), max(spread(tpr), spread(fpr))


def fairness(
    y_true: np.ndarray, y_pred: np.ndarray, sensitive: pd.DataFrame
) -> tuple[dict[str, Any], dict[str, float]]:
    """Metrics per group of each sensitive column, and the parity differences (fairlearn's
    definitions, computed directly: fairlearn's MetricFrame costs ~1 s per run here).

    Returns (report for the JSON artifact, flat metrics to log)."""
    report: dict[str, Any] = {}
    flat: dict[str, float] = {}
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    for column in sensitive.columns:
        groups = sensitive[column].astype(object).where(sensitive[column].notna(), "missing").astype(str).to_numpy()
        rows = {}
        for group in sorted(np.unique(groups)):
            mask = groups == group
            row: dict[str, float | int] = _group_metrics(y_true[mask], y_pred[mask])
            row["count"] = int(mask.sum())
            rows[str(group)] = row
            for name in SLICE_METRICS:
                flat[f"{_slug(column)}_{_slug(group)}_{name}"] = float(row[name])
        dpd, eod = parity_differences(y_true, y_pred, groups)
        flat[f"{_slug(column)}_demographic_parity_difference"] = dpd
        flat[f"{_slug(column)}_equalized_odds_difference"] = eod
        report[column] = {
            "groups": rows,
            "demographic_parity_difference": dpd,
            "equalized_odds_difference": eod,
        }
    return report, flat


def sliced(sensitive: pd.DataFrame, metrics_of: Any, names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, float]]:
    """Per group of each sensitive column, `metrics_of(mask)` (a dict holding `names`), and per metric the
    largest between-group difference (`<column>_<metric>_difference`). Returns (report, flat metrics)."""
    report: dict[str, Any] = {}
    flat: dict[str, float] = {}
    for column in sensitive.columns:
        groups = sensitive[column].astype(object).where(sensitive[column].notna(), "missing").astype(str).to_numpy()
        rows = {}
        for group in sorted(np.unique(groups)):
            mask = groups == group
            row: dict[str, float | int] = {**metrics_of(mask), "count": int(mask.sum())}
            rows[str(group)] = row
            for name in names:
                flat[f"{_slug(column)}_{_slug(group)}_{name}"] = float(row[name])
        entry: dict[str, Any] = {"groups": rows}
        for name in names:
            values = [float(row[name]) for row in rows.values()]
            difference = float(np.nanmax(values) - np.nanmin(values)) if not np.all(np.isnan(values)) else float("nan")
            entry[f"{name}_difference"] = difference
            flat[f"{_slug(column)}_{name}_difference"] = difference
        report[column] = entry
    return report, flat


def _headline(task: Task, y_true: np.ndarray, outputs: np.ndarray, classes: tuple[Any, ...]) -> float:
    return task.score(y_true, outputs, classes)[task.headline]


def permutation_importance_raw(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, seed: int,
                               n_repeats: int = 5, task: Task = tasks.BINARY) -> dict[str, float]:
    """Mean loss of the task's headline metric (ROC-AUC drop, RMSE increase ...) when one raw feature is
    shuffled.

    The preprocessing is per raw feature and row-wise, so shuffling a raw column equals shuffling
    its output columns together: the data is transformed once and only the estimator re-runs."""
    preprocess, model = pipeline.named_steps["preprocess"], pipeline.named_steps["model"]
    matrix = np.asarray(preprocess.transform(X), dtype=float)
    groups = np.array(output_groups(pipeline))
    y_true = np.asarray(y)
    outputs, classes = task.outputs(model, matrix)
    sign = 1.0 if task.higher_is_better_headline else -1.0
    baseline = _headline(task, y_true, outputs, classes)
    rng = np.random.default_rng(seed)
    batches, owners = [], []
    for name in X.columns:
        columns = np.flatnonzero(groups == name)
        for _ in range(n_repeats):
            shuffled = matrix.copy()
            shuffled[:, columns] = matrix[rng.permutation(len(matrix))][:, columns]
            batches.append(shuffled)
            owners.append(name)
    permuted, _ = task.outputs(model, np.vstack(batches))
    permuted = permuted.reshape(len(batches), len(matrix), *permuted.shape[1:])
    drops: dict[str, list[float]] = {}
    for owner, row in zip(owners, permuted, strict=True):
        drops.setdefault(owner, []).append(sign * (baseline - _headline(task, y_true, row, classes)))
    return {name: float(np.mean(values)) for name, values in drops.items()}


def importance(
    pipeline: Pipeline, X_test: pd.DataFrame, y_test: pd.Series, seed: int, task: Task = tasks.BINARY
) -> tuple[str, dict[str, float]]:
    """Importance per raw feature: impurity for trees, |coefficient| for linear models with one output,
    else permutation importance (loss of the task's headline metric) on the test split."""
    model = pipeline.named_steps["model"]
    groups = output_groups(pipeline)
    if hasattr(model, "feature_importances_"):
        return "impurity", aggregate_by_raw_feature(np.asarray(model.feature_importances_), groups)
    coef = getattr(model, "coef_", None)
    if coef is not None and (np.ndim(coef) == 1 or (np.ndim(coef) == 2 and np.shape(coef)[0] == 1)):
        return "abs_coefficient", aggregate_by_raw_feature(np.abs(np.asarray(coef).reshape(-1)), groups)
    return "permutation", permutation_importance_raw(pipeline, X_test, y_test, seed, task=task)


def roc_points(y_true: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    fpr, tpr, thresholds = roc_curve(y_true, proba)
    thresholds = np.where(np.isinf(thresholds), 1.0, thresholds)
    return {
        "fpr": fpr.round(6).tolist(),
        "tpr": tpr.round(6).tolist(),
        "thresholds": thresholds.round(6).tolist(),
        "auc": float(roc_auc_score(y_true, proba)),
    }


def report(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, str]) -> tuple[str, dict[str, Any]]:
    """sklearn's classification report, as text and as a dict."""
    kwargs = {"labels": [0, 1], "target_names": list(labels), "zero_division": 0}
    text = classification_report(y_true, y_pred, digits=3, **kwargs)
    as_dict = classification_report(y_true, y_pred, output_dict=True, **kwargs)
    return text, as_dict


def plot_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, str], title: str,
                          path: Path) -> list[list[int]]:
    matrix = confusion_matrix(y_true, y_pred, labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=13)
    ax.set_xticks([0, 1], labels=list(labels))
    ax.set_yticks([0, 1], labels=list(labels))
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return matrix.tolist()


def plot_roc(points: dict[str, Any], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
    ax.plot(points["fpr"], points["tpr"], label=f"AUC = {points['auc']:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_importance(values: dict[str, float], kind: str, title: str, path: Path, task: Task = tasks.BINARY) -> None:
    names = sorted(values, key=values.get)
    fig, ax = plt.subplots(figsize=(4.8, 0.35 * len(names) + 1.2), dpi=100)
    ax.barh(names, [values[n] for n in names], color="#3b6ea8")
    label = next(m.label for m in task.metrics if m.name == task.headline)
    permuted = f"{label} {'drop' if task.higher_is_better_headline else 'increase'} when permuted"
    ax.set_xlabel({"impurity": "Mean decrease in impurity", "abs_coefficient": "|coefficient| (scaled inputs)",
                   "permutation": permuted}.get(kind, kind))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
