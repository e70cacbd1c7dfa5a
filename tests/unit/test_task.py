"""The task concept: inference from a target, a model and a run; each task's metrics equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlscope import task
from mlscope.errors import BadInput


@pytest.mark.parametrize(("values", "expected"), [
    ([0, 1, 1, 0, 1], "binary"),
    (["yes", "no", "no"], "binary"),
    ([True, False, True], "binary"),
    (["a", "b", "c", "a"], "multiclass"),
    ([1, 2, 3, 4, 5, 3], "multiclass"),  # whole numbers, few distinct: classes (ratings)
    (list(range(21)), "regression"),  # more than 20 distinct whole numbers
    ([0.5, 1.5, 2.5, 0.5], "regression"),  # fractions are amounts, not classes
    ([151.0, 75.0, 141.0, 206.0] * 10 + [1.0 * i for i in range(30)], "regression"),
])
def test_the_task_is_inferred_from_the_target(values: list, expected: str) -> None:
    assert task.infer_from_target(pd.Series(values, name="y")).name == expected


def test_a_stated_task_wins_when_the_target_fits_it() -> None:
    ratings = pd.Series([1, 2, 3, 4, 5] * 4, name="stars")
    assert task.infer_from_target(ratings).name == "multiclass"
    assert task.infer_from_target(ratings, "regression").name == "regression"
    assert task.infer_from_target(pd.Series([0, 1] * 5, name="y"), "binary").name == "binary"


@pytest.mark.parametrize(("values", "stated", "message"), [
    (["a", "b", "c"], "regression", "target column 'y' is not numeric ('a'): regression needs numbers"),
    (["a", "b", "c"], "binary", "target column 'y' has 3 classes, which is not a binary task (use --task multiclass)"),
    ([1, 1, 1], None, "target column 'y' has a single value: there is nothing to predict"),
    ([0.1 * i for i in range(300)], "multiclass",
     "target column 'y' has 300 distinct numbers: too many classes for multiclass classification "
     "(use --task regression)"),
    ([1, 2], "ranking", "unknown task 'ranking'; choose one of binary, multiclass, regression"),
])
def test_a_target_that_cannot_fit_gets_one_line(values: list, stated: str | None, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        task.infer_from_target(pd.Series(values, name="y"), stated)
    assert str(caught.value) == message and "\n" not in str(caught.value)


def test_the_task_is_inferred_from_a_model_and_from_a_run() -> None:
    X, y = load_wine(return_X_y=True)
    assert task.infer_from_model(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)) \
        is task.MULTICLASS
    assert task.infer_from_model(LogisticRegression(max_iter=5000).fit(X, y == 1)) is task.BINARY
    Xd, yd = load_diabetes(return_X_y=True)
    assert task.infer_from_model(make_pipeline(StandardScaler(), LinearRegression()).fit(Xd, yd)) is task.REGRESSION
    assert task.infer_from_model(object()) is None
    assert task.infer_from_run({task.TASK_TAG: "regression"}, {"accuracy": 1.0}) is task.REGRESSION
    assert task.infer_from_run({}, {"training_rmse": 1.0, "training_r2_score": 0.5}) is task.REGRESSION
    assert task.infer_from_run({}, {"training_accuracy_score": 0.9, "training_roc_auc": 0.9}) is task.BINARY
    assert task.infer_from_run({}, {"f1_macro": 0.9, "accuracy": 0.9}) is task.MULTICLASS
    assert task.infer_from_run({}, {"custom": 1.0}) is None


def test_each_tasks_metrics_equal_scikit_learns() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 200)
    proba = rng.dirichlet(np.ones(3), 200)
    classes = ["class_0", "class_1", "class_2"]
    labels = np.asarray(classes, dtype=object)[truth]
    scores = task.MULTICLASS.score(labels, proba, classes)
    predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=1e-12)
    assert scores["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, predicted), abs=1e-12)
    assert scores["f1_macro"] == pytest.approx(skm.f1_score(labels, predicted, average="macro"), abs=1e-12)
    assert scores["roc_auc"] == pytest.approx(skm.roc_auc_score(truth, proba, multi_class="ovr"), abs=1e-12)
    assert scores["log_loss"] == pytest.approx(skm.log_loss(truth, proba), abs=1e-12)
    assert scores["recall_class_class_2"] == pytest.approx(np.mean(predicted[truth == 2] == "class_2"), abs=1e-12)

    y, prediction = rng.normal(100, 20, 300), rng.normal(100, 20, 300)
    scores = task.REGRESSION.score(y, prediction)
    assert scores["rmse"] == pytest.approx(np.sqrt(np.mean((y - prediction) ** 2)), abs=1e-9)
    assert scores["mae"] == pytest.approx(np.mean(np.abs(y - prediction)), abs=1e-9)
    assert scores["r2"] == pytest.approx(skm.r2_score(y, prediction), abs=1e-12)
    assert scores["max_error"] == pytest.approx(np.max(np.abs(y - prediction)), abs=1e-9)
    assert scores["mape"] == pytest.approx(np.mean(np.abs((y - prediction) / y)), abs=1e-9)
    assert "mape" not in task.REGRESSION.score(np.array([0.0, 1.0]), np.array([0.5, 1.0]))

    binary = rng.integers(0, 2, 100)
    positive = rng.random(100)
    scores = task.BINARY.score(binary, np.column_stack([1 - positive, positive]), [0, 1])
    assert scores["roc_auc"] == pytest.approx(skm.roc_auc_score(binary, positive), abs=1e-12)
    assert scores["f1"] == pytest.approx(skm.f1_score(binary, positive >= 0.5), abs=1e-12)


def test_directions_of_our_metrics_and_of_foreign_names() -> None:
    assert [task.REGRESSION.direction(m) for m in task.REGRESSION.metric_names] == ["min", "min", "max", "min", "min"]
    assert task.higher_is_better("cv_f1_macro_mean") and not task.higher_is_better("cv_rmse_mean")
    assert not task.higher_is_better("training_mean_squared_error") and task.higher_is_better("training_r2_score")
    assert task.higher_is_better("precision_class_2") and not task.higher_is_better("val_loss")


def test_only_a_regressor_has_residuals() -> None:
    assert task.REGRESSION.has_residuals and not task.BINARY.has_residuals and not task.MULTICLASS.has_residuals
    assert task.REGRESSION.residuals([3.0, 1.0], np.array([[2.5], [1.5]])).tolist() == [0.5, -0.5]
    with pytest.raises(ValueError, match="a binary model has no residuals"):
        task.BINARY.residuals([1], [0.7])
