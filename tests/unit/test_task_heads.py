"""The compiled prediction path for every task: bit for bit the model's own `predict_proba` / `predict`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_wine
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlscope import task as tasks
from mlscope.estimators import Forest, prediction_head, probabilities_head
from mlscope.explain.shapley import ShapleyExplainer
from mlscope.serving.predictor import compile_predictor


def pipeline(columns: list[str], estimator: Any) -> Pipeline:
    steps = [(c, Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), [c])
             for c in columns]
    return Pipeline([("pre", ColumnTransformer(steps)), ("model", estimator)])


def with_missing(X: pd.DataFrame) -> pd.DataFrame:
    """The rows, a scaled copy, and a copy with every third value missing (the imputers fill them)."""
    missing = X.copy()
    missing[::3] = np.nan
    return pd.concat([X, X * 1.07, missing], ignore_index=True)


@pytest.mark.parametrize("accelerate", [True, False])
@pytest.mark.parametrize("forest", [RandomForestClassifier, ExtraTreesClassifier])
def test_every_class_of_a_forest_is_bit_identical(forest: type, accelerate: bool) -> None:
    X, y = load_wine(return_X_y=True)
    model = forest(n_estimators=25, random_state=0).fit(X, y)
    rows = np.vstack([X, X * 0.93])
    head = Forest(model, None, accelerate)
    assert head.method == ("numba kernel" if accelerate else "numpy")
    assert np.array_equal(head(rows), model.predict_proba(rows))
    float32 = rows.astype(np.float32)
    assert np.array_equal(head.all_trees(float32), model.predict_proba(rows))
    assert np.array_equal(head.tree_by_tree(float32), model.predict_proba(rows))


@pytest.mark.parametrize("accelerate", [True, False])
@pytest.mark.parametrize("forest", [RandomForestRegressor, ExtraTreesRegressor])
def test_a_forest_regressor_is_bit_identical(forest: type, accelerate: bool) -> None:
    X, y = load_diabetes(return_X_y=True)
    model = forest(n_estimators=25, random_state=0).fit(X, y)
    head, kind = prediction_head(model, accelerate)
    assert kind.startswith("forest of 25 trees")
    assert np.array_equal(head(X), model.predict(X))


def test_other_estimators_answer_with_their_own_methods() -> None:
    X, y = load_wine(return_X_y=True)
    logistic = LogisticRegression(max_iter=5000).fit(X, y)
    head, kind = probabilities_head(logistic)
    assert kind == "LogisticRegression.predict_proba" and np.array_equal(head(X), logistic.predict_proba(X))
    ridge = Ridge().fit(X, y.astype(float))
    head, kind = prediction_head(ridge)
    assert kind == "Ridge.predict" and np.array_equal(head(X), ridge.predict(X))


@pytest.mark.parametrize(("load", "estimator", "head"), [
    (load_wine, RandomForestClassifier(n_estimators=20, random_state=0), "forest of 20 trees, every class"),
    (load_wine, LogisticRegression(max_iter=5000), "LogisticRegression.predict_proba"),
    (load_diabetes, RandomForestRegressor(n_estimators=20, random_state=0), "forest of 20 trees"),
    (load_diabetes, KNeighborsRegressor(), "KNeighborsRegressor.predict"),
])
def test_compiled_predictors_of_every_task_equal_the_model(load: Any, estimator: Any, head: str) -> None:
    X, y = load(return_X_y=True, as_frame=True)
    model = pipeline(list(X.columns), estimator).fit(X, y)
    task = tasks.infer_from_model(model)
    predictor = compile_predictor(model, list(X.columns), list(X.columns))
    assert predictor.kind.startswith("compiled:") and head in predictor.kind, predictor.kind
    rows = with_missing(X)
    expected = model.predict_proba(rows) if task is tasks.MULTICLASS else model.predict(rows)
    assert np.array_equal(predictor.outputs({c: rows[c].to_numpy() for c in X.columns}), expected)


def test_a_regressor_without_a_closed_form_is_explained_through_its_feature_blocks() -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X = X.iloc[:, :6]
    model = pipeline(list(X.columns), KNeighborsRegressor()).fit(X, y)
    background = X.sample(30, random_state=0)
    fast = ShapleyExplainer(model, background).explain(X.head(3))
    slow = ShapleyExplainer(model, background, fast_path=False).explain(X.head(3))
    assert fast.metadata["evaluator"] == "feature-blocks" and fast.metadata["model_output"] == "prediction"
    assert np.abs(fast.values - slow.values).max() <= 1e-9
    assert np.abs(fast.outputs - model.predict(X.head(3))).max() <= 1e-9
