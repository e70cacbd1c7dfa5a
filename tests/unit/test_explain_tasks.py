"""The engine for every task: each class of a multiclass model and a regressor's prediction, through
mlscope's per-feature pipelines and bare estimators, equal brute force and add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from mlscope.explain.shapley import ShapleyExplainer
from tests.unit.test_shapley import brute_force

FEATURES = 6


def per_feature(estimator, columns):
    prepare = ColumnTransformer([(c, StandardScaler(), [c]) for c in columns])
    return Pipeline([("prepare", prepare), ("model", estimator)])


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True, as_frame=True)
    X = X.iloc[:, :FEATURES]
    labels = pd.Series(np.array(["barolo", "grignolino", "barbera"])[y], name="cultivar")
    return X, labels


MULTICLASS = {
    "logistic (feature blocks)": lambda cols: per_feature(LogisticRegression(max_iter=2000), cols),
    "svc (feature blocks)": lambda cols: per_feature(SVC(probability=True, random_state=0), cols),
    "forest (tree path)": lambda cols: RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0),
    "boosting (enumeration)": lambda cols: HistGradientBoostingClassifier(max_iter=20, random_state=0),
}


@pytest.mark.parametrize("name", list(MULTICLASS))
def test_every_class_of_a_multiclass_model_equals_brute_force(wine, name: str) -> None:
    X, y = wine
    model = MULTICLASS[name](list(X.columns)).fit(X, y)
    background, rows = X.iloc[::9].reset_index(drop=True), X.iloc[[3, 70, 140]].reset_index(drop=True)
    proba = model.predict_proba(rows)
    total = np.zeros((len(rows), FEATURES))
    for column, label in enumerate(model.classes_):
        explanation = ShapleyExplainer(model, background, output_class=label).explain(rows)
        expected = brute_force(lambda frame, c=column: model.predict_proba(frame)[:, c], rows, background)
        assert np.abs(explanation.values - expected).max() <= 1e-9
        assert explanation.additivity_errors.max() <= 1e-9
        np.testing.assert_allclose(explanation.outputs, proba[:, column], atol=1e-12)
        assert explanation.metadata["model_output"] == f"probability of class {label}"
        assert explanation.metadata["exact"] is True
        total += explanation.values
    # the class probabilities sum to 1 whatever the coalition, so each feature's values sum to 0 over classes
    assert np.abs(total).max() <= 1e-9


def test_an_unknown_class_is_refused_by_name(wine) -> None:
    X, y = wine
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="unknown class 'merlot'; the model's classes are barbera, barolo, grignolino"):
        ShapleyExplainer(model, X.iloc[:10], output_class="merlot")


def test_a_regressor_in_a_feature_pipeline_explains_its_prediction() -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X = X.iloc[:, :FEATURES]
    model = per_feature(SVR(C=50.0), list(X.columns)).fit(X, y)
    background, rows = X.iloc[:25], X.iloc[100:104].reset_index(drop=True)
    explanation = ShapleyExplainer(model, background).explain(rows)
    assert explanation.metadata["model_output"] == "prediction" and explanation.metadata["path"] == "enumeration"
    assert np.abs(explanation.values - brute_force(model.predict, rows, background)).max() <= 1e-9
    np.testing.assert_allclose(explanation.outputs, model.predict(rows), atol=1e-9)
    assert explanation.additivity_errors.max() <= 1e-9


def test_the_negative_class_of_a_binary_model_mirrors_the_positive_one(wine) -> None:
    X, y = wine
    binary = (y == "barolo").astype(int)
    for model in (RandomForestClassifier(n_estimators=10, random_state=0).fit(X, binary),
                  per_feature(LogisticRegression(max_iter=2000), list(X.columns)).fit(X, binary)):
        rows, background = X.iloc[:4], X.iloc[::12]
        positive = ShapleyExplainer(model, background).explain(rows)
        negative = ShapleyExplainer(model, background, output_class=0).explain(rows)
        np.testing.assert_allclose(negative.values, -positive.values, atol=1e-12)
        np.testing.assert_allclose(negative.outputs, 1 - positive.outputs, atol=1e-12)
        assert negative.metadata["model_output"] == "probability of class 0"


def test_xgboost_behind_mlscopes_label_wrapper_is_explained_exactly_by_its_trees(wine) -> None:
    """Text labels put XGBClassifier inside EncodedLabels: its trees are still read (exact, not sampled),
    and each class's values are those of the bare booster fitted on the class codes."""
    from xgboost import XGBClassifier

    from mlscope.training.portable import EncodedLabels

    X, y = load_wine(return_X_y=True, as_frame=True)  # all 13 features: beyond enumeration, trees or sampling
    y = wine[1]
    wrapped = EncodedLabels(XGBClassifier(n_estimators=15, max_depth=3, random_state=0)).fit(X, y)
    bare = wrapped.estimator_
    background, rows = X.iloc[::9].reset_index(drop=True), X.iloc[[3, 70, 140]].reset_index(drop=True)
    for code, label in enumerate(wrapped.classes_):
        explained = ShapleyExplainer(wrapped, background, output_class=label).explain(rows)
        reference = ShapleyExplainer(bare, background, output_class=code).explain(rows)
        assert explained.metadata["exact"] is True and "TreeSHAP" in explained.metadata["algorithm"]
        assert np.abs(explained.values - reference.values).max() <= 1e-12
        assert explained.additivity_errors.max() <= 1e-6
