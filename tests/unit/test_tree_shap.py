"""The exact tree path against Shapley's formula written out, against shap's interventional
TreeExplainer, and the scikit-learn readers against the models' own outputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mlscope.explain import tree_shap
from mlscope.explain.sklearn_trees import extract
from mlscope.explain.tree_models import LOG_ODDS, PREDICTION, PROBABILITY, UnsupportedTrees
from mlscope.explain.tree_path import TreePath
from tests.shap_reference import shap_interventional


def raw_output(model):
    """The model's own raw output as (rows, outputs): what the tree path explains."""
    estimator = model.steps[-1][1] if isinstance(model, Pipeline) else model
    if isinstance(estimator, GradientBoostingClassifier):
        method = model.decision_function
    elif hasattr(estimator, "predict_proba"):
        method = model.predict_proba
    else:
        method = model.predict
    return lambda frame: np.asarray(method(frame), dtype=float).reshape(len(frame), -1)


def brute_force(model, rows: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """(rows, features, outputs) from the definition: every coalition, every background row, hybrid
    rows put through the model itself (preprocessing included)."""
    f = raw_output(model)
    features = list(rows.columns)
    m, k = len(features), len(background)
    coalitions = list(itertools.product([False, True], repeat=m))
    index = {c: i for i, c in enumerate(coalitions)}
    out = []
    for r in range(len(rows)):
        hybrids = []
        for coalition in coalitions:
            hybrid = background.copy()
            for j, inside in enumerate(coalition):
                if inside:
                    hybrid[features[j]] = [rows[features[j]].iloc[r]] * k
            hybrids.append(hybrid)
        v = f(pd.concat(hybrids, ignore_index=True)).reshape(len(coalitions), k, -1).mean(axis=1)
        phi = np.zeros((m, v.shape[1]))
        for coalition in coalitions:
            for j in range(m):
                if coalition[j]:
                    continue
                size = sum(coalition)
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                with_j = coalition[:j] + (True,) + coalition[j + 1:]
                phi[j] += weight * (v[index[with_j]] - v[index[coalition]])
        out.append(phi)
    return np.array(out)


_BRUTE: dict[str, np.ndarray] = {}


def brute_force_once(key: str, model, rows: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """brute_force, computed once per model for the several table settings (the models are seeded)."""
    if key not in _BRUTE:
        _BRUTE[key] = brute_force(model, rows, background)
    return _BRUTE[key]


def numeric_data(m: int, n: int = 300, nan: bool = False, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, m))
    binary = (X[:, 0] + X[:, 1] * X[:, 2 % m] > 0).astype(int)
    three = np.digitize(X[:, 1] + 0.5 * X[:, 0], [-0.5, 0.5])
    target = X[:, 0] * 2 + np.sin(X[:, 1]) + X[:, m - 1] * X[:, 0]
    if nan:
        X[rng.random(X.shape) < 0.15] = np.nan
    return pd.DataFrame(X, columns=[f"f{j}" for j in range(m)]), binary, three, target


@pytest.fixture(params=[0, 3, tree_shap.MAX_TABLE_GROUPS], ids=["walks", "mixed", "tables"])
def table_groups(request, monkeypatch):
    """Leaves with at most this many groups on their path are tabled, the rest walked: all walked,
    both kinds in one tree, all tabled (the small test trees)."""
    monkeypatch.setattr(tree_shap, "MAX_TABLE_GROUPS", request.param)
    monkeypatch.setattr(tree_shap, "MAX_TABLE_TREE_LEAVES", 10**6)  # the test forests' trees too
    return request.param


BARE = [
    ("rf-multiclass-nan", lambda: RandomForestClassifier(n_estimators=8, max_depth=7, random_state=0), "three", True),
    ("et-binary-nan", lambda: ExtraTreesClassifier(n_estimators=8, max_depth=7, random_state=0), "binary", True),
    ("dt-classifier-nan", lambda: DecisionTreeClassifier(max_depth=8, random_state=0), "three", True),
    ("rf-regressor-nan", lambda: RandomForestRegressor(n_estimators=8, max_depth=7, random_state=0), "target", True),
    ("et-regressor", lambda: ExtraTreesRegressor(n_estimators=8, max_depth=7, random_state=0), "target", False),
    ("dt-regressor-nan", lambda: DecisionTreeRegressor(max_depth=8, random_state=0), "target", True),
    ("gb-binary", lambda: GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0), "binary", False),
    ("gb-multiclass", lambda: GradientBoostingClassifier(n_estimators=8, max_depth=3, random_state=0), "three", False),
    ("gb-regressor", lambda: GradientBoostingRegressor(n_estimators=15, max_depth=4, random_state=0), "target", False),
]


def fit_bare(make, target: str, nan: bool, m: int = 5):
    X, binary, three, y = numeric_data(m, nan=nan)
    model = make().fit(X, {"binary": binary, "three": three, "target": y}[target])
    return model, X


@pytest.mark.parametrize("name,make,target,nan", BARE, ids=[b[0] for b in BARE])
def test_bare_models_equal_brute_force(name, make, target, nan, table_groups):
    model, X = fit_bare(make, target, nan)
    background, rows = X.iloc[:12], X.iloc[200:204]
    path = TreePath.build(model, list(X.columns), background)
    result = path.explain(rows)
    expected = brute_force_once(name, model, rows, background)
    assert result.values.shape == expected.shape
    assert np.abs(result.values - expected).max() <= 1e-9
    f = raw_output(model)
    assert np.abs(result.outputs - f(rows)).max() <= 1e-9
    assert np.abs(result.base - f(background).mean(axis=0)).max() <= 1e-9
    assert np.abs(result.base + result.values.sum(axis=1) - result.outputs).max() <= 1e-6


def test_ten_features_equal_brute_force(table_groups):
    model, X = fit_bare(lambda: RandomForestClassifier(n_estimators=5, max_depth=10, random_state=1), "binary",
                        True, m=10)
    background, rows = X.iloc[:8], X.iloc[250:251]
    path = TreePath.build(model, list(X.columns), background)
    assert path.prepared.tables.max_groups == table_groups
    result = path.explain(rows)
    assert np.abs(result.values - brute_force_once("ten", model, rows, background)).max() <= 1e-9


def mixed_frame(n: int = 300, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(40, 12, n),
        "port": rng.choice(["C", "Q", "S", "X"], n),
        "fare": rng.exponential(30, n),
        "deck": rng.choice(["A", "B", "C"], n),
    })
    frame.loc[rng.random(n) < 0.2, "age"] = np.nan
    frame.loc[rng.random(n) < 0.1, "deck"] = np.nan
    score = (frame["port"] == "S") * 1.0 + (frame["age"].fillna(30) > 40) - (frame["deck"] == "B") * 0.8
    y = (score + rng.normal(0, 0.5, n) > 0.6).astype(int).to_numpy()
    return frame, y


def pipeline(estimator) -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))])
    pre = ColumnTransformer([("age", numeric, ["age"]), ("port", categorical, ["port"]),
                             ("fare", numeric, ["fare"]), ("deck", categorical, ["deck"])], remainder="drop")
    return Pipeline([("preprocess", pre), ("model", estimator)])


@pytest.mark.parametrize("estimator", [
    RandomForestClassifier(n_estimators=10, max_depth=8, random_state=0),
    GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0),
    DecisionTreeRegressor(max_depth=8, random_state=0),
], ids=["rf", "gb", "dt-regressor"])
def test_pipeline_one_hot_group_is_one_player(estimator, table_groups):
    frame, y = mixed_frame()
    target = frame["fare"].to_numpy() if isinstance(estimator, DecisionTreeRegressor) else y
    model = pipeline(estimator).fit(frame, target)
    features = list(frame.columns)
    background, rows = frame.iloc[:15], frame.iloc[100:105]
    path = TreePath.build(model, features, background)
    assert path.groups.tolist().count(features.index("port")) == 4  # four one-hot columns, one player
    result = path.explain(rows)
    expected = brute_force_once(f"pipeline-{type(estimator).__name__}", model, rows, background)
    assert result.values.shape == (5, 4, expected.shape[2])
    assert np.abs(result.values - expected).max() <= 1e-9
    assert np.abs(result.base + result.values.sum(axis=1) - raw_output(model)(rows)).max() <= 1e-6


def test_grouped_values_are_not_the_sum_of_column_values():
    """Explaining the one-hot columns as separate players gives other numbers: the grouping matters."""
    frame, y = mixed_frame()
    model = pipeline(RandomForestClassifier(n_estimators=10, max_depth=8, random_state=0)).fit(frame, y)
    background, rows = frame.iloc[:15], frame.iloc[100:110]
    grouped = TreePath.build(model, list(frame.columns), background).explain(rows).values
    encoded = model.steps[0][1].transform
    forest = model.steps[-1][1]
    explainer = shap.TreeExplainer(forest, encoded(background), feature_perturbation="interventional")
    per_column = np.asarray(explainer.shap_values(encoded(rows), check_additivity=False))
    summed = per_column[:, 1:5, :].sum(axis=1)  # port's columns, each its own player
    assert np.abs(summed - grouped[:, 1, :]).max() > 1e-6


SHAP_READS = [b for b in BARE if b[0] != "gb-multiclass"]  # shap reads binary GradientBoosting only


@pytest.mark.parametrize("name,make,target,nan", SHAP_READS, ids=[b[0] for b in SHAP_READS])
def test_equal_to_shap_interventional(name, make, target, nan):
    """On models without preprocessing (and without missing values, which shap routes its own way)."""
    model, X = fit_bare(make, target, False, m=6)
    background, rows = X.iloc[:40], X.iloc[200:230]
    result = TreePath.build(model, list(X.columns), background).explain(rows)
    theirs = shap_interventional(model, background, rows)
    assert np.abs(result.values - theirs).max() <= 1e-6


@pytest.mark.parametrize("name,make,target,nan", BARE, ids=[b[0] for b in BARE])
def test_reader_predict_raw_equals_the_model(name, make, target, nan):
    model, X = fit_bare(make, target, nan)
    ensemble = extract(model)
    rows = numeric_data(5, n=500, nan=nan, seed=9)[0]
    assert np.abs(ensemble.predict_raw(rows.to_numpy()) - raw_output(model)(rows)).max() <= 1e-9
    expected = {"binary": 2, "three": 3}.get(target, 1)
    if isinstance(model, GradientBoostingClassifier):
        assert ensemble.output == LOG_ODDS
        assert ensemble.output_names == (["1"] if target == "binary" else ["0", "1", "2"])
    else:
        assert ensemble.output == (PROBABILITY if target != "target" else PREDICTION)
        assert ensemble.n_outputs == expected


def test_one_row_and_many_rows_agree():
    """A single row runs the walks split over trees, many rows split over rows: same numbers."""
    model, X = fit_bare(BARE[0][1], "three", True)
    path = TreePath.build(model, list(X.columns), X.iloc[:20])
    many = path.explain(X.iloc[100:140]).values
    one = np.array([path.explain(X.iloc[[100 + i]]).values[0] for i in range(0, 40, 13)])
    assert np.abs(many[::13] - one).max() <= 1e-12


def test_not_a_tree_model_is_unsupported():
    X, y, _, _ = numeric_data(4)
    with pytest.raises(UnsupportedTrees, match="LogisticRegression is not a tree ensemble"):
        TreePath.build(LogisticRegression().fit(X, y), list(X.columns), X.iloc[:10])


def test_text_feature_without_preprocessing_is_unsupported():
    X, y, _, _ = numeric_data(3)
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    background = X.iloc[:10].astype(object)
    background["f1"] = "a"
    with pytest.raises(UnsupportedTrees, match="'f1' is not numeric"):
        TreePath.build(model, list(X.columns), background)


def test_boosting_with_a_row_dependent_start_is_unsupported():
    X, y, _, _ = numeric_data(3)
    model = GradientBoostingClassifier(n_estimators=3, init=LogisticRegression(), random_state=0).fit(X, y)
    with pytest.raises(UnsupportedTrees, match="starts from a LogisticRegression"):
        extract(model)


def test_explainers_used_from_several_threads_agree_with_one_thread():
    """The API explains from several threads at once: same numbers, and no crash of numba's pool."""
    import threading

    X, y, _, _ = numeric_data(6)
    models = [RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y),
              GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y)]
    paths = [TreePath.build(model, list(X.columns), X.iloc[:30]) for model in models]
    expected = [path.explain(X.iloc[100:130]).values for path in paths]
    failures: list[str] = []

    def work(k: int) -> None:
        path, reference = paths[k % 2], expected[k % 2]
        for r in range(3):
            if np.abs(path.explain(X.iloc[100:130]).values - reference).max() > 1e-12:
                failures.append(f"batch {k}")
            if np.abs(path.explain(X.iloc[[100 + r]]).values[0] - reference[r]).max() > 1e-12:
                failures.append(f"row {k}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
