"""Per-task evaluation pieces that need no MLflow: fairness slices, residual deciles, the selection rule
per task, the shipped plans per task, the label wrapper for XGBoost."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.base import clone

from mlscope import task as tasks
from mlscope.errors import BadInput
from mlscope.training import multiclass, regression
from mlscope.training.experiments import SelectionRule, default_experiments_path, load_plan
from mlscope.training.fitting import FitJob
from mlscope.training.portable import EncodedLabels


def _groups(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"Site": rng.choice(["north", "south", "east"], n), "Level": rng.choice([1, 2], n)})


@pytest.mark.parametrize("seed", range(3))
def test_regression_fairness_is_the_error_per_group(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, p = rng.normal(10, 3, 150), rng.normal(10, 3, 150)
    sensitive = _groups(150, seed)
    report, flat = regression.fairness(y, p, sensitive)
    for column, slug in (("Site", "site"), ("Level", "level")):
        maes = []
        for group in sensitive[column].astype(str).unique():
            mask = (sensitive[column].astype(str) == group).to_numpy()
            row = report[column]["groups"][group]
            assert row["count"] == mask.sum()
            assert row["mae"] == pytest.approx(skm.mean_absolute_error(y[mask], p[mask]))
            assert row["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y[mask], p[mask])))
            assert row["mean_residual"] == pytest.approx(np.mean(y[mask] - p[mask]))
            assert flat[f"{slug}_{group}_mae"] == row["mae"]
            maes.append(row["mae"])
        assert flat[f"{slug}_mae_difference"] == pytest.approx(max(maes) - min(maes))
        assert report[column]["mae_difference"] == flat[f"{slug}_mae_difference"]


def test_multiclass_fairness_is_accuracy_and_macro_f1_per_group() -> None:
    rng = np.random.default_rng(7)
    labels = np.array(["a", "b", "c"], dtype=object)
    y, y_pred = labels[rng.integers(0, 3, 200)], labels[rng.integers(0, 3, 200)]
    sensitive = _groups(200, 7)
    report, flat = multiclass.fairness(y, y_pred, sensitive)
    f1s = []
    for group, row in report["Site"]["groups"].items():
        mask = (sensitive["Site"] == group).to_numpy()
        assert row["accuracy"] == pytest.approx(skm.accuracy_score(y[mask], y_pred[mask]))
        assert row["f1_macro"] == pytest.approx(skm.f1_score(list(y[mask]), list(y_pred[mask]), average="macro"))
        f1s.append(row["f1_macro"])
    assert flat["site_f1_macro_difference"] == pytest.approx(max(f1s) - min(f1s))


def test_residuals_by_decile_cover_every_row_in_prediction_order() -> None:
    rng = np.random.default_rng(3)
    p = rng.normal(size=95)
    y = p + rng.normal(scale=0.5, size=95)
    table = regression.residuals_by_decile(y, p)
    assert list(table["decile"]) == list(range(1, 11)) and table["rows"].sum() == 95
    assert (table["prediction_min"].iloc[1:].to_numpy() >= table["prediction_max"].iloc[:-1].to_numpy()).all()
    first = np.argsort(p, kind="stable")[: table["rows"].iloc[0]]
    assert table["mean_residual"].iloc[0] == pytest.approx(np.mean(y[first] - p[first]))


def test_multiclass_confusion_is_counts_and_row_shares() -> None:
    y = np.array(["a", "a", "b", "c", "c", "c"], dtype=object)
    y_pred = np.array(["a", "b", "b", "c", "a", "c"], dtype=object)
    matrix = multiclass.confusion(y, y_pred, ("a", "b", "c"))
    assert matrix["counts"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert matrix["normalized"][2] == pytest.approx([1 / 3, 0, 2 / 3], abs=1e-6)


@pytest.mark.parametrize(
    ("task", "metric", "direction", "tie"),
    [(tasks.REGRESSION, "rmse", "min", "mae"), (tasks.MULTICLASS, "f1_macro", "max", "accuracy")],
)
def test_a_rule_the_task_cannot_score_becomes_the_task_headline(task: tasks.Task, metric: str, direction: str,
                                                                tie: str) -> None:
    rule, note = SelectionRule().for_task(task)  # the default: roc_auc, max, accuracy
    if task is tasks.MULTICLASS:  # multiclass logs roc_auc (one-vs-rest): the rule stands
        assert (rule, note) == (SelectionRule(), None)
        return
    assert (rule.metric, rule.direction, rule.tie_breaker) == (metric, direction, tie)
    assert note and "roc_auc is not a regression metric" in note and "lower is better" in note
    kept, none = SelectionRule("cv_mae_mean", "min", "accuracy").for_task(task)
    assert (kept.metric, kept.tie_breaker, none) == ("cv_mae_mean", "mae", None)
    assert SelectionRule().for_task(tasks.BINARY) == (SelectionRule(), None)


def test_shipped_plans_per_task() -> None:
    regression_plan = load_plan(task=tasks.REGRESSION)
    assert [s.estimator.rsplit(".", 1)[1] for s in regression_plan.select()] == [
        "Ridge", "RandomForestRegressor", "HistGradientBoostingRegressor", "XGBRegressor", "LGBMRegressor"]
    assert (regression_plan.selection.metric, regression_plan.selection.direction) == ("rmse", "min")
    multiclass_plan = load_plan(task=tasks.MULTICLASS)
    assert [s.estimator.rsplit(".", 1)[1] for s in multiclass_plan.select()] == [
        "LogisticRegression", "RandomForestClassifier", "SVC", "XGBClassifier", "LGBMClassifier"]
    assert multiclass_plan.selection.metric == "f1_macro"
    with pytest.raises(BadInput, match="experiment 'ridge': sklearn.linear_model.Ridge is a regressor"):
        load_plan(default_experiments_path(tasks.REGRESSION), task=tasks.BINARY)


def test_encoded_labels_answer_in_the_original_labels() -> None:
    from xgboost import XGBClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.array(["low", "mid", "high"], dtype=object)[np.digitize(X[:, 0], [-0.4, 0.4])]
    model = clone(EncodedLabels(XGBClassifier(n_estimators=5, max_depth=2))).fit(X, y)
    assert list(model.classes_) == ["high", "low", "mid"]
    copy = cloudpickle.loads(cloudpickle.dumps(model))
    assert (copy.predict(X) == model.classes_[model.predict_proba(X).argmax(axis=1)]).all()
    assert tasks.infer_from_model(model) is tasks.MULTICLASS
    assert model.get_params()["estimator__max_depth"] == 2


def test_regression_folds_are_not_stratified() -> None:
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=50)})
    y = pd.Series(2 * X["a"] + rng.normal(scale=0.1, size=50))
    _, folds = FitJob(Ridge(), X, y, folds=5, seed=1, task=tasks.REGRESSION).result()
    assert folds.stratified is False and len(folds.values["rmse"]) == 5 and "roc_auc" not in folds.values
