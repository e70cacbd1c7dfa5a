"""The three tabular tasks mlscope knows: binary classification, multiclass classification, regression.

This module is the one place that knows, per task, which metrics are computed and which way is better,
the headline metric (the runs view's default sort, the selection rule's default), what "the model's
output" is (P(class) or the prediction) and how a task is recognised: from a target column, from a
fitted model, or from a run's tag and metrics (for runs mlscope did not log). Every other part asks it
instead of branching on the task's name.

Kept light (numpy, pandas, scikit-learn metrics only): the training workers import it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlscope.errors import BadInput

TaskName = Literal["binary", "multiclass", "regression"]
TASK_TAG = "mlscope.task"
MAX_CLASSES = 20  # a numeric target with more distinct (integer) values than this is a regression target
PER_CLASS = ("precision_class_", "recall_class_")


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    label: str


def _binary_scores(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> dict[str, float]:
    """`proba` is (rows, 2) in `classes` order; class index 1 is the positive class."""
    positive = proba[:, 1]
    truth = (np.asarray(y_true) == classes[1]).astype(int)
    predicted = (positive >= 0.5).astype(int)
    return {
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        "precision": float(skm.precision_score(truth, predicted, zero_division=0)),
        "recall": float(skm.recall_score(truth, predicted, zero_division=0)),
        "f1": float(skm.f1_score(truth, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(truth, positive)) if len(np.unique(truth)) == 2 else float("nan"),
        "log_loss": float(skm.log_loss(truth, np.clip(positive, 1e-15, 1 - 1e-15), labels=[0, 1])),
    }


def _multiclass_scores(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> dict[str, float]:
    """`proba` is (rows, k) in `classes` order."""
    labels = list(classes)
    predicted = np.asarray(labels, dtype=object)[np.argmax(proba, axis=1)]
    truth = np.asarray(y_true, dtype=object)
    present = set(truth.tolist())
    scores = {
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(truth, predicted)),
        "f1_macro": float(skm.f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        "f1_weighted": float(skm.f1_score(truth, predicted, labels=labels, average="weighted", zero_division=0)),
        "log_loss": float(skm.log_loss(truth, np.clip(proba, 1e-15, 1.0), labels=labels)),
        # one-vs-rest, macro: undefined (NaN) unless every class occurs in y_true
        "roc_auc": (float(skm.roc_auc_score(truth, proba, multi_class="ovr", average="macro", labels=labels))
                    if present == set(labels) else float("nan")),
    }
    precision = skm.precision_score(truth, predicted, labels=labels, average=None, zero_division=0)
    recall = skm.recall_score(truth, predicted, labels=labels, average=None, zero_division=0)
    for label, p, r in zip(labels, precision, recall, strict=True):
        scores[f"precision_class_{metric_key(label)}"] = float(p)
        scores[f"recall_class_{metric_key(label)}"] = float(r)
    return scores


def _regression_scores(y_true: np.ndarray, prediction: np.ndarray, classes: Sequence[Any]) -> dict[str, float]:
    truth = np.asarray(y_true, dtype=float)
    prediction = np.asarray(prediction, dtype=float).reshape(-1)
    scores = {
        "rmse": float(np.sqrt(skm.mean_squared_error(truth, prediction))),
        "mae": float(skm.mean_absolute_error(truth, prediction)),
        "r2": float(skm.r2_score(truth, prediction)) if len(truth) > 1 else float("nan"),
        "max_error": float(skm.max_error(truth, prediction)),
    }
    if np.all(truth != 0):  # MAPE is undefined when a true value is 0
        scores["mape"] = float(skm.mean_absolute_percentage_error(truth, prediction))
    return scores


@dataclass(frozen=True)
class Task:
    """One task: its metrics (in table order), headline and tie breaker, and how its outputs are scored."""

    name: TaskName
    metrics: tuple[Metric, ...]
    headline: str
    tie_breaker: str
    classification: bool
    _score: Callable[[np.ndarray, np.ndarray, Sequence[Any]], dict[str, float]]
    # paired tests of two runs' test-split predictions (stats/two_runs.py); a bootstrap leads the verdict
    prediction_tests: tuple[str, ...] = ()

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    def score(self, y_true: Any, outputs: np.ndarray, classes: Sequence[Any] = ()) -> dict[str, float]:
        """The task's metrics. `outputs`: class probabilities (rows, classes) in `classes` order for a
        classifier, predictions (rows,) for a regressor."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an undefined metric on a degenerate fold is reported, not warned
            return self._score(np.asarray(y_true), np.asarray(outputs, dtype=float), list(classes))

    @property
    def higher_is_better_headline(self) -> bool:
        return higher_is_better(self.headline)

    def direction(self, metric: str) -> Literal["max", "min"]:
        return "max" if higher_is_better(metric) else "min"

    @property
    def predict_method(self) -> Literal["predict_proba", "predict"]:
        """The model method whose answer is this task's output (and the logged pyfunc's predict)."""
        return "predict_proba" if self.classification else "predict"

    def outputs(self, model: Any, X: Any) -> tuple[np.ndarray, tuple[Any, ...]]:
        """The model's outputs for `X` as `score` takes them, and the classes they are in the order of
        (the model's `classes_`; () for a regressor)."""
        if not self.classification:
            return np.asarray(model.predict(X), dtype=float).reshape(-1), ()
        return np.asarray(model.predict_proba(X), dtype=float), tuple(model.classes_)

    @property
    def has_residuals(self) -> bool:
        """Whether actual − prediction is this task's error (its output is a number on the truth's scale):
        regression. A classifier's P(class) minus a label is no residual."""
        return not self.classification

    def residuals(self, y_true: Any, prediction: Any) -> np.ndarray:
        """actual − prediction per row (ValueError for a task without residuals)."""
        if not self.has_residuals:
            raise ValueError(f"a {self.name} model has no residuals")
        return np.asarray(y_true, dtype=float).reshape(-1) - np.asarray(prediction, dtype=float).reshape(-1)

    def output_name(self, class_label: Any = None) -> str:
        """What an explanation or an answer of this task is about, in words."""
        if not self.classification:
            return "prediction"
        return f"P({class_label})" if class_label is not None else "P(class)"


BINARY = Task("binary", (
    Metric("accuracy", True, "accuracy"), Metric("precision", True, "precision"), Metric("recall", True, "recall"),
    Metric("f1", True, "F1"), Metric("roc_auc", True, "ROC-AUC"), Metric("log_loss", False, "log loss"),
), headline="roc_auc", tie_breaker="accuracy", classification=True, _score=_binary_scores,
   prediction_tests=("mcnemar", "bootstrap_auc"))

MULTICLASS = Task("multiclass", (
    Metric("accuracy", True, "accuracy"), Metric("balanced_accuracy", True, "balanced accuracy"),
    Metric("f1_macro", True, "macro F1"), Metric("f1_weighted", True, "weighted F1"),
    Metric("roc_auc", True, "ROC-AUC (one-vs-rest, macro)"), Metric("log_loss", False, "log loss"),
), headline="roc_auc", tie_breaker="f1_macro", classification=True, _score=_multiclass_scores,
   prediction_tests=("mcnemar", "bootstrap_macro_f1"))

REGRESSION = Task("regression", (
    Metric("rmse", False, "RMSE"), Metric("mae", False, "MAE"), Metric("r2", True, "R²"),
    Metric("mape", False, "MAPE"), Metric("max_error", False, "max error"),
), headline="rmse", tie_breaker="mae", classification=False, _score=_regression_scores,
   prediction_tests=("paired_squared_error", "paired_absolute_error", "bootstrap_rmse"))

TASKS: dict[str, Task] = {t.name: t for t in (BINARY, MULTICLASS, REGRESSION)}
_DIRECTIONS = {m.name: m.higher_is_better for t in TASKS.values() for m in t.metrics}
# names other tools log (autolog's training_*, Keras' val_*, and common spellings) mapped to ours
_LOWER_IS_BETTER_WORDS = ("loss", "error", "err", "rmse", "mse", "mae", "mape", "deviance", "brier", "time", "latency",
                          "cost")


def metric_key(label: Any) -> str:
    """A class label as MLflow metric-name text (letters, digits, _ - . only)."""
    text = str(label)
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in text) or "_"


def higher_is_better(metric: str) -> bool:
    """Direction of any metric name: ours exactly; cv_<m>_mean as <m>; per-class scores higher; otherwise
    lower for names that read as an error or a loss, higher for the rest (scores, accuracies, R²)."""
    name = metric
    if name.startswith("cv_") and name.endswith("_mean"):
        name = name[3:-5]
    if name in _DIRECTIONS:
        return _DIRECTIONS[name]
    if name.startswith(PER_CLASS):
        return True
    lowered = name.lower()
    return not any(word in lowered for word in _LOWER_IS_BETTER_WORDS)


def get(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise BadInput(f"unknown task '{name}'; choose one of {', '.join(TASKS)}", field="task") from None


def _classification_of(classes: int, target: str) -> Task:
    if classes < 2:
        raise BadInput(f"target column '{target}' has a single value: there is nothing to predict", field="target")
    return BINARY if classes == 2 else MULTICLASS


def infer_from_target(y: pd.Series, stated: str | None = None) -> Task:
    """The task a target column asks for, or the stated one if the column fits it (BadInput otherwise).

    Inferred: text, booleans and categories are classes; a numeric column whose values are all whole
    numbers with at most MAX_CLASSES distinct values is classes too (0/1, ratings, codes); any other
    numeric column is a regression target. Two classes make a binary task, more a multiclass one."""
    target = str(y.name)
    values = y.dropna()
    if values.empty:
        raise BadInput(f"target column '{target}' has no values", field="target")
    distinct = int(values.nunique())
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if stated is not None:
        task = get(stated)
        if not task.classification:
            if not numeric:
                raise BadInput(f"target column '{target}' is not numeric ({values.iloc[0]!r}): regression needs "
                               "numbers", field="target")
            if distinct < 2:
                raise BadInput(f"target column '{target}' has a single value: there is nothing to predict",
                               field="target")
            return task
        if distinct > 1 and _classification_of(distinct, target) is not task:
            raise BadInput(f"target column '{target}' has {distinct} classes, which is not a {task.name} task "
                           f"(use --task {_classification_of(distinct, target).name})", field="task")
        if numeric and distinct > MAX_CLASSES * 10:
            raise BadInput(f"target column '{target}' has {distinct} distinct numbers: too many classes for "
                           f"{task.name} classification (use --task regression)", field="task")
        return _classification_of(distinct, target)
    if numeric:
        whole = bool(np.all(np.isclose(values.to_numpy(dtype=float) % 1, 0)))
        if not (whole and distinct <= MAX_CLASSES):
            if distinct < 2:
                raise BadInput(f"target column '{target}' has a single value: there is nothing to predict",
                               field="target")
            return REGRESSION
    return _classification_of(distinct, target)


def infer_from_model(model: Any) -> Task | None:
    """The task of a fitted model (a Pipeline's last step counts): classes_ with predict_proba make a
    classifier, scikit-learn's regressor tag a regressor; None when neither tells."""
    from sklearn.base import is_regressor

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    classes = getattr(final, "classes_", None)
    if classes is not None and hasattr(model, "predict_proba"):
        return BINARY if len(classes) == 2 else MULTICLASS
    try:
        regressor = is_regressor(final)
    except Exception:  # noqa: BLE001 - a foreign estimator without scikit-learn's tags
        regressor = False
    return REGRESSION if regressor else None


_REGRESSION_HINTS = ("rmse", "mae", "r2", "mse", "mean_squared_error", "mean_absolute_error", "r2_score")
_CLASSIFICATION_HINTS = ("accuracy", "roc_auc", "f1", "log_loss", "precision", "recall")


def infer_from_run(tags: Mapping[str, str], metrics: Mapping[str, float]) -> Task | None:
    """The task of a logged run: its `mlscope.task` tag, else what its metric names say (autolog logs
    training_rmse or training_accuracy_score ...); None ("unknown task") when nothing tells."""
    stated = tags.get(TASK_TAG)
    if stated in TASKS:
        return TASKS[stated]
    if stated == "binary_classification":  # the tag's value before mlscope knew other tasks
        return BINARY
    names = [n.lower() for n in metrics]
    regression = any(h in n for n in names for h in _REGRESSION_HINTS)
    classification = any(h in n for n in names for h in _CLASSIFICATION_HINTS)
    if regression == classification:
        return None
    if regression:
        return REGRESSION
    multiclass = any(n.startswith(("f1_macro", "balanced_accuracy", "precision_class_")) for n in names)
    return MULTICLASS if multiclass else BINARY
