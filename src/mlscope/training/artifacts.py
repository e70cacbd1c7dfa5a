"""The files logged with each run, per task: plots, reports, test predictions, folds, fairness slices.

Every task logs feature_importance.{png,json}, predictions.csv (first column the row id, then y_true and
the task's outputs), cv_folds.json and, with slices, fairness.json. Then per task:
- binary: confusion_matrix.png, roc_curve.{png,json}, classification_report.{txt,json};
  predictions carry `probability` (of class 1) and `y_pred`;
- multiclass: confusion_matrix.{png,json} (counts and row-normalised), roc_curves.{png,json} (one-vs-rest
  per class), classification_report.{txt,json}; predictions carry `probability_<class>` per class and
  `y_pred` (the label);
- regression: predicted_vs_actual.png, residuals.png, residuals_by_decile.{csv,json}; predictions carry
  `prediction`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report

from mlscope.task import Task
from mlscope.training import evaluate, fitting, multiclass, regression
from mlscope.training.experiments import ExperimentSpec
from mlscope.training.prepare import Split

PREDICTIONS = "predictions.csv"
Writer = Callable[[ExperimentSpec, Split, np.ndarray, tuple[Any, ...], Path], tuple[dict[str, Any], dict[str, float]]]


def _predictions(split: Split, columns: dict[str, Any], folder: Path) -> None:
    id_name = split.dataset.id_column or "row"
    frame = pd.DataFrame({id_name: split.test_ids.to_numpy(), "y_true": split.y_test.to_numpy(), **columns})
    frame.to_csv(folder / PREDICTIONS, index=False, float_format="%.17g")


def _binary(spec: ExperimentSpec, split: Split, outputs: np.ndarray, classes: tuple[Any, ...],
            folder: Path) -> tuple[dict[str, Any], dict[str, float]]:
    y_test = split.y_test.to_numpy()
    proba = outputs[:, list(classes).index(1)]
    y_pred = (proba >= 0.5).astype(int)
    labels = split.dataset.label_names
    title = spec.title
    matrix = evaluate.plot_confusion_matrix(y_test, y_pred, labels, title, folder / "confusion_matrix.png")
    points = evaluate.roc_points(y_test, proba)
    evaluate.plot_roc(points, title, folder / "roc_curve.png")
    (folder / "roc_curve.json").write_text(json.dumps(points))
    text, as_dict = evaluate.report(y_test, y_pred, labels)
    (folder / "classification_report.txt").write_text(text)
    (folder / "classification_report.json").write_text(json.dumps({**as_dict, "confusion_matrix": matrix}, indent=2))
    _predictions(split, {"probability": proba, "y_pred": y_pred}, folder)
    if not split.dataset.slices:
        return {}, {}
    return evaluate.fairness(y_test, y_pred, split.dataset.frame.loc[split.X_test.index, split.dataset.slices])


def _multiclass(spec: ExperimentSpec, split: Split, outputs: np.ndarray, classes: tuple[Any, ...],
                folder: Path) -> tuple[dict[str, Any], dict[str, float]]:
    y_test = split.y_test.to_numpy()
    y_pred = multiclass.predicted_labels(outputs, classes)
    matrix = multiclass.confusion(y_test, y_pred, classes)
    (folder / "confusion_matrix.json").write_text(json.dumps(matrix, indent=2))
    multiclass.plot_confusion(matrix, spec.title, folder / "confusion_matrix.png")
    curves = multiclass.roc_curves(y_test, outputs, classes)
    (folder / "roc_curves.json").write_text(json.dumps(curves))
    multiclass.plot_roc_curves(curves, spec.title, folder / "roc_curves.png")
    kwargs = {"labels": list(classes), "target_names": [str(c) for c in classes], "zero_division": 0}
    truth, predicted = y_test.astype(object), y_pred.astype(object)
    (folder / "classification_report.txt").write_text(classification_report(truth, predicted, digits=3, **kwargs))
    as_dict = classification_report(truth, predicted, output_dict=True, **kwargs)
    (folder / "classification_report.json").write_text(json.dumps({**as_dict, "confusion_matrix": matrix["counts"]},
                                                                   indent=2))
    columns: dict[str, Any] = {f"probability_{label}": outputs[:, i] for i, label in enumerate(classes)}
    _predictions(split, {**columns, "y_pred": y_pred}, folder)
    if not split.dataset.slices:
        return {}, {}
    return multiclass.fairness(y_test, y_pred, split.dataset.frame.loc[split.X_test.index, split.dataset.slices])


def _regression(spec: ExperimentSpec, split: Split, outputs: np.ndarray, classes: tuple[Any, ...],
                folder: Path) -> tuple[dict[str, Any], dict[str, float]]:
    y_test = split.y_test.to_numpy(dtype=float)
    regression.plot_predicted_vs_actual(y_test, outputs, spec.title, folder / "predicted_vs_actual.png")
    regression.plot_residuals(y_test, outputs, spec.title, folder / "residuals.png")
    deciles = regression.residuals_by_decile(y_test, outputs)
    deciles.to_csv(folder / "residuals_by_decile.csv", index=False, float_format="%.17g")
    (folder / "residuals_by_decile.json").write_text(json.dumps(deciles.to_dict(orient="records"), indent=2))
    _predictions(split, {"prediction": outputs}, folder)
    if not split.dataset.slices:
        return {}, {}
    return regression.fairness(y_test, outputs, split.dataset.frame.loc[split.X_test.index, split.dataset.slices])


WRITERS: dict[str, Writer] = {"binary": _binary, "multiclass": _multiclass, "regression": _regression}


def write(task: Task, spec: ExperimentSpec, split: Split, pipeline: object, outputs: np.ndarray,
          classes: tuple[Any, ...], folds: fitting.FoldScores, folder: Path) -> dict[str, float]:
    """Write every artifact file of one run into `folder`; return the fairness metrics to log."""
    fairness_report, fairness_metrics = WRITERS[task.name](spec, split, outputs, classes, folder)
    if fairness_report:
        (folder / "fairness.json").write_text(json.dumps(fairness_report, indent=2))
    kind, values = evaluate.importance(pipeline, split.X_test, split.y_test, split.spec.random_state, task)
    evaluate.plot_importance(values, kind, spec.title, folder / "feature_importance.png", task)
    (folder / "feature_importance.json").write_text(json.dumps({"kind": kind, "values": values}, indent=2))
    (folder / "cv_folds.json").write_text(json.dumps(
        {"folds": folds.folds, "seed": folds.seed, "stratified": folds.stratified, "values": folds.values},
        indent=2))
    return fairness_metrics
