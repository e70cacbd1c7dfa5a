"""The closed-form linear path against brute-force enumeration of the margin, and its refusals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC

from mlscope.errors import BadInput
from mlscope.explain.linear import DECISION, LinearPath, NotLinear
from mlscope.explain.tree_models import LOG_ODDS, PREDICTION


def frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Two numeric features (one with gaps), a 4-level category, a 3-level one; a binary, a 3-class and a
    real target."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({
        "age": rng.normal(40, 12, n).round(),
        "fare": np.where(rng.random(n) < 0.1, np.nan, rng.exponential(30, n).round(1)),
        "port": rng.choice(["C", "Q", "S", "X"], n),
        "class": rng.choice(["first", "second", "third"], n),
    })
    score = (data["age"] - 40) / 12 + (data["port"] == "S") * 1.2 - (data["class"] == "third") + rng.normal(0, 1, n)
    return data, (score > 0).to_numpy().astype(int), np.digitize(score, [-0.7, 0.7]), score.to_numpy()


def per_feature_pipeline(estimator: object) -> Pipeline:
    pre = ColumnTransformer([
        ("age", StandardScaler(), ["age"]),
        ("fare", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["fare"]),
        ("port", OneHotEncoder(handle_unknown="ignore"), ["port"]),
        ("class", OneHotEncoder(), ["class"]),
    ])
    return Pipeline([("preprocess", pre), ("model", estimator)])


def brute_force(margin, rows: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """Shapley's formula over raw features on the margin (rows, outputs): every coalition, every
    background row (all hybrids in one call of the model)."""
    features = list(rows.columns)
    m, k = len(features), len(background)
    coalitions = [c for size in range(m + 1) for c in itertools.combinations(range(m), size)]
    hybrids = []
    for r in range(len(rows)):
        for coalition in coalitions:
            hybrid = background.copy()
            for j in coalition:
                hybrid[features[j]] = rows[features[j]].iloc[r]
            hybrids.append(hybrid)
    f = margin(pd.concat(hybrids, ignore_index=True))
    v_all = f.reshape(len(rows), len(coalitions), k, -1).mean(axis=2)
    out = np.zeros((len(rows), m, v_all.shape[2]))
    for r in range(len(rows)):
        v = dict(zip(coalitions, v_all[r], strict=True))
        for i in range(m):
            for size in range(m):
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                for coalition in itertools.combinations([j for j in range(m) if j != i], size):
                    out[r, i] += weight * (v[tuple(sorted((*coalition, i)))] - v[coalition])
    return out


def two_d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return a.reshape(len(a), -1)


@pytest.mark.parametrize("estimator, target, output", [
    (LogisticRegression(max_iter=1000), "binary", LOG_ODDS),
    (LogisticRegression(max_iter=1000), "multiclass", LOG_ODDS),
    (LinearSVC(), "binary", DECISION),
    (LinearSVC(), "multiclass", DECISION),
    (RidgeClassifier(), "binary", DECISION),
    (SGDClassifier(loss="log_loss", random_state=0), "binary", LOG_ODDS),
    (Ridge(alpha=0.5), "regression", PREDICTION),
    (Lasso(alpha=0.01), "regression", PREDICTION),
    (ElasticNet(alpha=0.01), "regression", PREDICTION),
    (SGDRegressor(random_state=0), "regression", PREDICTION),
])
def test_pipeline_equals_brute_force_on_the_margin(estimator, target: str, output: str) -> None:
    data, binary, multiclass, real = frame(300, seed=1)
    y = {"binary": binary, "multiclass": multiclass, "regression": real}[target]
    model = per_feature_pipeline(estimator).fit(data, y)
    background, rows = data.iloc[:15], data.iloc[200:203]
    path = LinearPath.build(model, list(data.columns), background)
    values, base, outputs, names = path.explain(rows)
    margin = (lambda f: two_d(model.decision_function(f))) if target != "regression" else (lambda f: two_d(model.predict(f)))
    expected = brute_force(margin, rows, background)
    assert path.output == output and len(names) == expected.shape[2]
    assert np.abs(values - expected).max() <= 1e-9
    assert np.abs(base - margin(background).mean(axis=0)).max() <= 1e-9
    assert np.abs(outputs - margin(rows)).max() <= 1e-9
    assert np.abs(base + values.sum(axis=1) - outputs).max() <= 1e-9


def test_one_hot_feature_is_one_player() -> None:
    data, binary, _, _ = frame(300, seed=2)
    model = per_feature_pipeline(LogisticRegression(max_iter=1000)).fit(data, binary)
    path = LinearPath.build(model, list(data.columns), data.iloc[:40])
    values, _, _, _ = path.explain(data.iloc[[250]])
    port = list(data.columns).index("port")
    encoder = model.named_steps["preprocess"].named_transformers_["port"]
    weights = model.named_steps["model"].coef_[0][2:6]
    columns = encoder.transform(data[["port"]].iloc[[250]]).toarray()[0] - encoder.transform(
        data[["port"]].iloc[:40]).toarray().mean(axis=0)
    assert values[0, port, 0] == pytest.approx(float(columns @ weights), abs=1e-12)
    assert values.shape == (1, 4, 1)  # four raw features, not eight encoded columns


def test_binary_margin_is_the_positive_class() -> None:
    data, binary, _, _ = frame(300, seed=3)
    labels = np.where(binary == 1, 1, 0)
    model = LogisticRegression(max_iter=1000).fit(data[["age"]], 1 - labels)  # classes [0, 1], still 1 positive
    path = LinearPath.build(model, ["age"], data[["age"]].iloc[:20])
    _, base, outputs, names = path.explain(data[["age"]].iloc[:5])
    assert names == ["log-odds of class 1"]
    assert np.abs(outputs[:, 0] - model.decision_function(data[["age"]].iloc[:5])).max() <= 1e-12
    reversed_labels = LogisticRegression(max_iter=1000).fit(data[["age"]], np.where(labels == 1, 1, 2))
    _, _, outputs2, names2 = LinearPath.build(reversed_labels, ["age"], data[["age"]].iloc[:20]).explain(
        data[["age"]].iloc[:5])
    assert names2 == ["log-odds of class 1"]  # classes [1, 2]: class 1 is the first, its margin is negated
    assert np.abs(outputs2[:, 0] + reversed_labels.decision_function(data[["age"]].iloc[:5])).max() <= 1e-12


def test_wide_bare_model_is_exact_without_enumeration() -> None:
    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(500, 40)), columns=[f"x{j}" for j in range(40)])
    y = (X.to_numpy() @ rng.normal(size=40) + rng.normal(size=500) > 0).astype(int)
    model = LogisticRegression(max_iter=2000).fit(X, y)
    background, rows = X.iloc[:100], X.iloc[400:450]
    values, base, outputs, _ = LinearPath.build(model, list(X.columns), background).explain(rows)
    assert values.shape == (50, 40, 1)
    assert abs(base[0] - model.decision_function(background).mean()) <= 1e-9
    assert np.abs(base[0] + values[:, :, 0].sum(axis=1) - model.decision_function(rows)).max() <= 1e-9
    # feature by feature: only its own column moves the margin (the game is additive)
    expected = (rows.to_numpy() - background.to_numpy().mean(axis=0)) * model.coef_[0]
    assert np.abs(values[:, :, 0] - expected).max() <= 1e-9


def test_linear_regression_multi_target() -> None:
    data, _, _, real = frame(200, seed=5)
    numeric = data[["age"]].assign(fare=data["fare"].fillna(0))
    model = LinearRegression().fit(numeric, np.column_stack([real, 2 * real + 1]))
    values, base, outputs, names = LinearPath.build(model, ["age", "fare"], numeric.iloc[:30]).explain(numeric.iloc[50:53])
    expected = brute_force(lambda f: two_d(model.predict(f)), numeric.iloc[50:53], numeric.iloc[:30])
    assert names == ["prediction 0", "prediction 1"] and np.abs(values - expected).max() <= 1e-9


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("model, reason", [
    (SVC(kernel="rbf"), "no coef_"),
    (MLPClassifier(max_iter=50), "no coef_"),
    (make_pipeline(StandardScaler(), PCA(2), LogisticRegression()), "one row-wise transformer per raw feature"),
])
def test_refuses_what_is_not_linear(model, reason: str) -> None:
    data, binary, _, _ = frame(200, seed=6)
    numeric = data[["age"]].assign(fare=data["fare"].fillna(0))
    model.fit(numeric, binary)
    with pytest.raises(NotLinear, match=reason):
        LinearPath.build(model, ["age", "fare"], numeric.iloc[:20])


def test_refuses_a_decision_that_is_not_the_product() -> None:
    """SVC(kernel="linear") has coef_, but with three classes its decision is one-vs-one."""
    data, _, multiclass, _ = frame(200, seed=7)
    numeric = data[["age"]].assign(fare=data["fare"].fillna(0))
    model = SVC(kernel="linear").fit(numeric, multiclass)
    with pytest.raises(NotLinear):
        LinearPath.build(model, ["age", "fare"], numeric.iloc[:20])



def test_rows_without_a_feature_are_bad_input() -> None:
    data, binary, _, _ = frame(100, seed=8)
    model = per_feature_pipeline(LogisticRegression(max_iter=1000)).fit(data, binary)
    path = LinearPath.build(model, list(data.columns), data.iloc[:20])
    with pytest.raises(BadInput, match="rows lack the feature.s. port"):
        path.explain(data.drop(columns="port"))
