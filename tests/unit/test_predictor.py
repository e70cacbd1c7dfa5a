"""The serving predictor against the models' own predict_proba: same numbers (bit for bit where the
design promises it), on real Titanic models, awkward records and every batch size the API uses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from mlscope.data.loader import load_titanic
from mlscope.serving.predictor import Predictor, compile_predictor
from mlscope.training.experiments import load_plan, quiet_seed_deprecations
from mlscope.training.features import build_pipeline, build_preprocessor, raw_features

NAMES = ["rf-baseline", "rf-tuned", "logistic-regression", "svm"]
HEADS = {"rf-baseline": "forest of 100 trees", "rf-tuned": "forest of 200 trees",
         "logistic-regression": "logistic regression", "svm": "SVC.predict_proba"}


@pytest.fixture(scope="module")
def titanic() -> tuple[Any, pd.DataFrame, dict[str, Pipeline]]:
    data = load_titanic()
    X = raw_features(data)
    models = {}
    with quiet_seed_deprecations():
        for spec in load_plan().select():
            models[spec.name] = build_pipeline(data, spec.build()).fit(X, data.y)
    assert sorted(models) == sorted(NAMES)
    return data, X, models


@pytest.fixture(scope="module")
def predictors(titanic) -> dict[tuple[str, bool], Predictor]:
    data, _, models = titanic
    return {(name, accelerate): compile_predictor(model, data.features, data.numeric, accelerate=accelerate)
            for name, model in models.items() for accelerate in (True, False)}


def columns_of(frame: pd.DataFrame, numeric: list[str]) -> dict[str, np.ndarray]:
    return {f: frame[f].to_numpy(np.float64 if f in numeric else object) for f in frame.columns}


def assert_same(predictor: Predictor, model: Pipeline, frame: pd.DataFrame, columns: dict[str, np.ndarray]) -> None:
    got = predictor.positive(columns)
    want = model.predict_proba(frame)[:, 1]
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-12
    if "logistic" not in predictor.kind:  # no BLAS call on the compiled side: bit for bit
        assert np.array_equal(got, want)


def perturbed(X: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """n Titanic rows with some numbers moved and some values missing or unseen."""
    rng = np.random.default_rng(seed)
    frame = X.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    frame["Age"] = np.where(rng.random(n) < 0.3, rng.uniform(0, 90, n), frame["Age"])
    frame["Fare"] = np.where(rng.random(n) < 0.3, rng.uniform(0, 600, n), frame["Fare"])
    frame.loc[rng.random(n) < 0.1, "Age"] = np.nan
    frame.loc[rng.random(n) < 0.1, "Embarked"] = np.nan
    frame.loc[rng.random(n) < 0.05, "Embarked"] = "X"
    return frame


@pytest.mark.parametrize("name", NAMES)
def test_mlscope_models_take_the_compiled_path(predictors, name: str) -> None:
    for accelerate in (True, False):
        kind = predictors[name, accelerate].kind
        assert kind.startswith("compiled: 7 per-feature encoders + ") and HEADS[name] in kind
    assert "numpy" in predictors["rf-baseline", False].kind


@pytest.mark.parametrize("accelerate", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_equals_predict_proba_on_the_whole_dataset(titanic, predictors, name: str, accelerate: bool) -> None:
    data, X, models = titanic
    assert_same(predictors[name, accelerate], models[name], X, columns_of(X, data.numeric))


@pytest.mark.parametrize("n", [1, 2, 33, 1000])
@pytest.mark.parametrize("accelerate", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_equals_predict_proba_for_every_batch_size(titanic, predictors, name: str, accelerate: bool, n: int) -> None:
    data, X, models = titanic
    frame = perturbed(X, n, seed=n)
    assert_same(predictors[name, accelerate], models[name], frame, columns_of(frame, data.numeric))


def awkward_rows(X: pd.DataFrame) -> pd.DataFrame:
    base = X.iloc[[0, 1, 2, 3]].to_dict("records")
    edits = [
        {"Age": None}, {"Age": np.nan}, {"Fare": None}, {"Fare": np.nan},
        {"Embarked": None}, {"Embarked": np.nan}, {"Embarked": pd.NA}, {"Sex": None},
        {"Pclass": np.nan, "SibSp": np.nan, "Parch": np.nan},
        {"Age": None, "Fare": None, "Embarked": None, "Sex": None, "Pclass": None},
        {"Embarked": "X"}, {"Embarked": ""}, {"Embarked": "s"}, {"Sex": "unknown"}, {"Sex": "X", "Embarked": "X"},
        {"Age": 0.0}, {"Age": 120.0}, {"Fare": 0.0}, {"Fare": 1e6}, {"Age": -5.0, "Fare": -1.0},
        {"Fare": 1e30, "Age": 1e-300}, {"SibSp": 40.0, "Parch": 40.0}, {"Pclass": 0.0}, {"Pclass": 7.0},
    ]
    rows = [{**base[i % len(base)], **edit} for i, edit in enumerate(edits)]
    return pd.DataFrame(rows, columns=X.columns)


@pytest.mark.parametrize("accelerate", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_missing_unseen_and_extreme_values(titanic, predictors, name: str, accelerate: bool) -> None:
    data, X, models = titanic
    frame = awkward_rows(X)
    numbers = {f: frame[f].astype("float64") for f in data.numeric}  # None -> NaN, as the API sends them
    columns = {f: numbers[f].to_numpy() if f in numbers else frame[f].to_numpy(object) for f in frame.columns}
    assert_same(predictors[name, accelerate], models[name], frame, columns)
    for i in range(len(frame)):  # each row alone too: batch size 1 takes other code paths
        row = frame.iloc[[i]].reset_index(drop=True)
        assert_same(predictors[name, accelerate], models[name], row, {f: v[i:i + 1] for f, v in columns.items()})


def outcome(predict: Any) -> Any:
    try:
        return predict()
    except Exception as exc:  # noqa: BLE001 - the exception type is the outcome compared
        return type(exc)


@pytest.mark.parametrize("case", ["infinite fare", "unhashable category", "empty batch"])
@pytest.mark.parametrize("name", ["rf-baseline", "logistic-regression"])
def test_input_the_compiled_path_cannot_encode_behaves_like_the_model(titanic, predictors, name: str,
                                                                      case: str) -> None:
    data, X, models = titanic
    frame = X.iloc[:3].reset_index(drop=True)
    if case == "infinite fare":
        frame["Fare"] = [1.0, np.inf, 2.0]
    elif case == "unhashable category":
        frame["Embarked"] = pd.Series(["S", ["S"], "C"], dtype=object)
    else:
        frame = frame.iloc[:0]
    expected = outcome(lambda: models[name].predict_proba(frame)[:, 1])
    got = outcome(lambda: predictors[name, True].positive(columns_of(frame, data.numeric)))
    if isinstance(expected, type):
        assert got is expected
    else:
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("n", [1, 33, 1000])
@pytest.mark.parametrize("name", ["rf-baseline", "rf-tuned"])
def test_both_numpy_forest_traversals_are_exact(titanic, predictors, name: str, n: int) -> None:
    data, X, models = titanic
    frame = perturbed(X, n, seed=7)
    matrix = models[name].steps[0][1].transform(frame)
    want = models[name].steps[-1][1].predict_proba(matrix)[:, 1]
    forest = predictors[name, False].head
    X32 = matrix.astype(np.float32)
    assert np.array_equal(forest.all_trees(X32), want)
    assert np.array_equal(forest.tree_by_tree(X32), want)


class Clip(TransformerMixin, BaseEstimator):
    """A custom transformer the predictor knows nothing about."""

    def fit(self, X: Any, y: Any = None) -> Clip:
        self.n_features_in_ = 1
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.clip(np.asarray(X, dtype=float), 0, 300)


def refit(data: Any, X: pd.DataFrame, estimator: Any, **replace: Any) -> Pipeline:
    preprocessor = build_preprocessor(data).set_params(**replace)
    return Pipeline([("preprocess", preprocessor), ("model", estimator)]).fit(X, data.y)


def test_a_custom_transformer_falls_back_to_scikit_learn(titanic) -> None:
    data, X, _ = titanic
    fare = Pipeline([("impute", SimpleImputer(strategy="median")), ("clip", Clip())])
    model = refit(data, X, LogisticRegression(max_iter=1000), Fare=fare)
    predictor = compile_predictor(model, data.features, data.numeric)
    assert predictor.kind.startswith("scikit-learn predict_proba (not a Pipeline of one row-wise")
    frame = awkward_rows(X)
    assert_same(predictor, model, frame, columns_of(frame, data.numeric))


def test_a_bare_estimator_falls_back_to_scikit_learn(titanic) -> None:
    data, X, _ = titanic
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X[data.numeric], data.y)
    predictor = compile_predictor(model, data.numeric, data.numeric)
    assert predictor.kind.startswith("scikit-learn predict_proba")
    frame = awkward_rows(X)[data.numeric].astype("float64")
    assert_same(predictor, model, frame, columns_of(frame, data.numeric))


def test_another_estimator_gets_the_compiled_matrix(titanic) -> None:
    data, X, _ = titanic
    model = build_pipeline(data, HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(X, data.y)
    predictor = compile_predictor(model, data.features, data.numeric)
    assert predictor.kind == "compiled: 7 per-feature encoders + HistGradientBoostingClassifier.predict_proba"
    for frame in (X, awkward_rows(X), perturbed(X, 1, seed=3)):
        assert_same(predictor, model, frame, columns_of(frame, data.numeric))


def test_an_unknown_block_transformer_runs_on_its_own_column(titanic) -> None:
    data, X, models = titanic
    fare = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", MinMaxScaler())])
    model = refit(data, X, clone(models["rf-tuned"].steps[-1][1]), Fare=fare)
    predictor = compile_predictor(model, data.features, data.numeric)
    assert predictor.kind.startswith("compiled: 6 per-feature encoders + scikit-learn transformers for Fare + forest")
    for frame in (X, awkward_rows(X), perturbed(X, 1, seed=4)):
        assert_same(predictor, model, frame, columns_of(frame, data.numeric))


def test_partial_numeric_chains_are_compiled_and_missing_values_reach_the_model(titanic) -> None:
    data, X, _ = titanic
    forest = RandomForestClassifier(n_estimators=20, random_state=0)
    model = refit(data, X, forest, Age=StandardScaler(), Fare=SimpleImputer(strategy="mean"))
    predictor = compile_predictor(model, data.features, data.numeric)
    assert predictor.kind.startswith("compiled: 7 per-feature encoders + forest of 20 trees")
    for frame in (X, awkward_rows(X), perturbed(X, 33, seed=5)):  # NaN ages: the forest routes them itself
        assert_same(predictor, model, frame, columns_of(frame, data.numeric))


def test_the_self_check_rejects_a_compiled_path_that_would_differ(titanic, monkeypatch: pytest.MonkeyPatch) -> None:
    data, X, models = titanic
    original = StandardScaler.transform
    monkeypatch.setattr(StandardScaler, "transform", lambda self, X, copy=None: original(self, X, copy) * 2.0)
    predictor = compile_predictor(models["logistic-regression"], data.features, data.numeric)
    assert predictor.kind == "scikit-learn predict_proba (self-check failed: compiled answers differ from the model's)"
    assert_same(predictor, models["logistic-regression"], X, columns_of(X, data.numeric))
