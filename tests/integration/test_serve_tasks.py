"""The prediction API for every task, against a real registry: regressors (diabetes) answer their prediction,
multiclass classifiers (wine) their label and every class's probability, equal to the registered model's
`predict` / `predict_proba`; explanations add up to what each answer reports; XGBoost and LightGBM
pipelines (sklearn flavor) are served like scikit-learn's own."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_wine
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from mlscope.serving.app import build_api
from tests.conftest import Store

pytestmark = pytest.mark.slow

WINE_FEATURES = 10  # at most 12 raw features: explanations of a class's probability are exact


def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y


def wine() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_wine(return_X_y=True, as_frame=True)
    names = np.array(["barolo", "grignolino", "barbera"], dtype=object)
    return X.iloc[:, :WINE_FEATURES], pd.Series(names[y.to_numpy()], name="cultivar")


def per_feature_pipeline(columns: list[str], estimator: Any) -> Pipeline:
    """mlscope's layout: one imputer (+ scaler) per raw feature, then the estimator."""
    from sklearn.preprocessing import StandardScaler

    steps = [(c, Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), [c])
             for c in columns]
    return Pipeline([("pre", ColumnTransformer(steps)), ("model", estimator)])


def estimators() -> dict[str, tuple[Any, Any]]:
    from lightgbm import LGBMRegressor
    from xgboost import XGBClassifier

    return {
        "ridge": (diabetes, Ridge(alpha=0.5)),
        "forest-regressor": (diabetes, RandomForestRegressor(n_estimators=30, max_depth=6, random_state=0)),
        "lightgbm-regressor": (diabetes, LGBMRegressor(n_estimators=40, num_leaves=8, verbose=-1, random_state=0)),
        "logistic": (wine, LogisticRegression(max_iter=2000)),
        "forest-classifier": (wine, RandomForestClassifier(n_estimators=30, max_depth=5, random_state=0)),
        "xgboost-classifier": (wine, XGBClassifier(n_estimators=30, max_depth=3, random_state=0)),
    }


@dataclass
class Served:
    name: str
    model: Any
    X: pd.DataFrame
    run_id: str
    version: str


def register(store: Store, name: str, make: Any, estimator: Any, explain: bool = True) -> Served:
    """Fit, log the stock MLflow way (sklearn flavor, with a signature), register, alias `production`,
    and log an explanation of 60 rows (its background is what the API explains against)."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from mlscope.explain.service import explain_run
    from mlscope.tracking.client import bind_fluent_api

    X, y = make()
    if type(estimator).__name__ == "XGBClassifier":  # XGBoost takes class numbers: wrap nothing, encode here
        y = pd.Series(pd.Categorical(y).codes, name=y.name)
    model = per_feature_pipeline(list(X.columns), estimator).fit(X, y)
    settings = store.settings()
    bind_fluent_api(settings)
    with mlflow.start_run(experiment_id=store.experiment("serve-tasks")) as run:
        info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, model.predict(X)),
                                        serialization_format="cloudpickle", registered_model_name=name)
    version = str(info.registered_model_version)
    store.client().set_registered_model_alias(name, "production", version)
    if explain:
        classes = getattr(model, "classes_", None)  # a multiclass model is explained one class at a time
        explain_run(settings, run.info.run_id, data=X.sample(60, random_state=1),
                    output_class=None if classes is None or len(classes) == 2 else classes[0])
    return Served(name, model, X, run.info.run_id, version)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, dict[str, Served]]]:
    store = Store(tmp_path_factory.mktemp("tasks"))
    yield store, {name: register(store, name, make, estimator) for name, (make, estimator) in estimators().items()}


def api_for(store: Store, name: str, **settings: Any) -> TestClient:
    return TestClient(build_api(store.settings(**settings).model_copy(update={"model_name": name})))


def records(X: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: float(v) for k, v in row.items()} for row in X.to_dict("records")]


REGRESSORS = ["ridge", "forest-regressor", "lightgbm-regressor"]
# the compiled path's estimator head per model: forests are traversed, any other estimator runs its own method
HEADS = {"ridge": "Ridge.predict", "forest-regressor": "forest of 30 trees (numba kernel)",
         "lightgbm-regressor": "LGBMRegressor.predict", "logistic": "LogisticRegression.predict_proba",
         "forest-classifier": "forest of 30 trees, every class (numba kernel)",
         "xgboost-classifier": "XGBClassifier.predict_proba"}
CLASSIFIERS = ["logistic", "forest-classifier", "xgboost-classifier"]


@pytest.mark.parametrize("name", REGRESSORS)
def test_a_regressor_answers_its_prediction(registry: tuple[Store, dict[str, Served]], name: str) -> None:
    store, served = registry
    entry = served[name]
    reference = entry.model.predict(entry.X)
    with api_for(store, name) as api:
        described = api.get("/model").json()
        assert described["task"] == "regression" and "classes" not in described
        assert described["inference"] == f"compiled: 10 per-feature encoders + {HEADS[name]}"
        batch = api.post("/predict/batch", json=records(entry.X))
        assert batch.status_code == 200
        predictions = np.array([answer["prediction"] for answer in batch.json()])
        assert np.abs(predictions - reference).max() <= 1e-9
        assert set(batch.json()[0]) == {"prediction", "model", "request_id"}
        one = api.post("/predict", json=records(entry.X.head(1))[0]).json()
        assert one == {"prediction": pytest.approx(reference[0], abs=1e-9), "model": {"name": name, "version": "1"},
                       "request_id": one["request_id"]}
        singles = [api.post("/predict", json=r).json()["prediction"] for r in records(entry.X.head(15))]
        assert np.abs(np.array(singles) - reference[:15]).max() <= 1e-9


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_a_multiclass_classifier_answers_its_label_and_every_probability(
        registry: tuple[Store, dict[str, Served]], name: str) -> None:
    store, served = registry
    entry = served[name]
    classes = [str(c) for c in entry.model.classes_]
    reference, labels = entry.model.predict_proba(entry.X), entry.model.predict(entry.X)
    with api_for(store, name) as api:
        described = api.get("/model").json()
        assert described["task"] == "multiclass" and described["classes"] == classes
        assert described["inference"] == f"compiled: {WINE_FEATURES} per-feature encoders + {HEADS[name]}"
        batch = api.post("/predict/batch", json=records(entry.X))
        assert batch.status_code == 200
        answers = batch.json()
        assert all(list(a["probabilities"]) == classes and set(a) == {"label", "probabilities", "model", "request_id"}
                   for a in answers)
        got = np.array([list(a["probabilities"].values()) for a in answers])
        assert np.abs(got - reference).max() <= 1e-9
        assert [a["label"] for a in answers] == [str(label) for label in labels]
        assert len(set(labels)) == 3  # every class is answered somewhere
        singles = [api.post("/predict", json=r).json() for r in records(entry.X.iloc[::12])]
        assert np.abs(np.array([list(a["probabilities"].values()) for a in singles]) - reference[::12]).max() <= 1e-9
        assert [a["label"] for a in singles] == [str(label) for label in labels[::12]]


@pytest.mark.parametrize("name", ["forest-regressor", "logistic"])
def test_the_served_model_logs_its_tasks_columns(registry: tuple[Store, dict[str, Served]], name: str,
                                                 tmp_path: Path) -> None:
    """Every answered row is logged with the model's inputs and the task's output columns: a regressor's
    prediction (no label), a multiclass classifier's label, its probability and every class's."""
    from datetime import UTC, datetime, timedelta

    from mlscope.monitoring import store as log_store

    store, served = registry
    entry = served[name]
    sent = records(entry.X.head(8))
    classes = [str(c) for c in getattr(entry.model, "classes_", [])]
    truth, wrong = (classes[1], "merlot") if classes else (151.5, "151.5")
    with api_for(store, name, monitor_dir=tmp_path) as api:
        answers = api.post("/predict/batch", json=sent[:6]).json()
        answers += [api.post("/predict", json=row).json() for row in sent[6:]]
        refused = api.post("/feedback", json={"request_id": answers[0]["request_id"], "actual": wrong})
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "actual"
        given = api.post("/feedback", json={"request_id": answers[0]["request_id"], "actual": truth})
        assert given.status_code == 200 and given.json()["actual"] == str(truth)
    now = datetime.now(UTC)
    table = log_store.predictions(tmp_path, name, now - timedelta(hours=1), now)
    rows = {row["request_id"]: row for row in table.to_pylist()}
    assert len(rows) == 8
    features = [f"in.{column}" for column in entry.X.columns]
    assert table.column_names == ["request_id", "ts", "model_name", "model_version", "alias", "latency_ms", "output",
                                  "label", *(f"p.{label}" for label in classes), *features]
    for answer, row_sent in zip(answers, sent, strict=True):
        row = rows[answer["request_id"]]
        assert [row[f] for f in features] == [row_sent[c] for c in entry.X.columns]
        if classes:
            assert row["label"] == answer["label"]
            assert row["output"] == answer["probabilities"][answer["label"]] == max(answer["probabilities"].values())
            assert {label: row[f"p.{label}"] for label in classes} == answer["probabilities"]
        else:
            assert row["output"] == answer["prediction"] and row["label"] is None
    labelled = log_store.labelled(tmp_path, name, now - timedelta(hours=1), now)
    assert labelled.column("request_id").to_pylist() == [answers[0]["request_id"]]
    assert labelled.column("actual").to_pylist() == [str(truth)]


def test_the_wine_labels_are_the_models_text_labels(registry: tuple[Store, dict[str, Served]]) -> None:
    store, served = registry
    with api_for(store, "logistic") as api:
        answer = api.post("/predict", json=records(served["logistic"].X.head(1))[0]).json()
        assert list(answer["probabilities"]) == ["barbera", "barolo", "grignolino"]  # the model's classes_ order
        assert answer["label"] == "barolo" and math.isclose(sum(answer["probabilities"].values()), 1.0)


def brute_force_shapley(f: Any, x: pd.DataFrame, background: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Interventional Shapley values of f at row x, by the definition: every coalition, every background row."""
    features = list(background.columns)
    m = len(features)
    value: dict[frozenset[int], float] = {}
    for size in range(m + 1):
        for coalition in itertools.combinations(range(m), size):
            hybrid = background.copy()
            for j in coalition:
                hybrid[features[j]] = x.iloc[0, j]
            value[frozenset(coalition)] = float(np.mean(f(hybrid)))
    phi = np.zeros(m)
    for i in range(m):
        for coalition, v in value.items():
            if i in coalition:
                continue
            s = len(coalition)
            weight = math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m)
            phi[i] += weight * (value[coalition | {i}] - v)
    return phi, value[frozenset()]


def stored_background(store: Store, run_id: str) -> pd.DataFrame:
    from mlscope.explain.service import stored_any_explanation

    stored = stored_any_explanation(store.client(), run_id)
    assert stored is not None
    return stored[1]


def test_a_multiclass_explanation_is_of_the_answered_class_and_equals_brute_force(
        registry: tuple[Store, dict[str, Served]]) -> None:
    store, served = registry
    entry = served["logistic"]
    labels = entry.model.predict(entry.X)
    rows = [int(np.flatnonzero(labels == label)[0]) for label in ("barolo", "grignolino", "barbera")]
    with api_for(store, "logistic") as api:
        assert api.get("/model").json()["explanations"].startswith("Shapley values of the answered class")
        answers = api.post("/predict/batch", params={"explain": "true"}, json=records(entry.X.iloc[rows])).json()
        one = api.post("/predict", params={"explain": "true"}, json=records(entry.X.iloc[[rows[1]]])[0]).json()
        other = api.post("/predict/batch", params={"explain_class": "barbera"}, json=records(entry.X.iloc[rows])).json()
        unknown = api.post("/predict", params={"explain_class": "merlot"}, json=records(entry.X.iloc[[rows[1]]])[0])
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "explain_class"
    assert "barbera, barolo, grignolino" in unknown.json()["error"]["message"]
    for answer in other:  # every row explained for the class asked for, whatever it answered
        explanation = answer["explanation"]
        assert explanation["model_output"] == "probability of class barbera"
        total = explanation["base_value"] + sum(explanation["contributions"].values())
        assert total == pytest.approx(answer["probabilities"]["barbera"], abs=1e-6)
    assert other[2]["explanation"]["contributions"] == pytest.approx(answers[2]["explanation"]["contributions"],
                                                                     abs=1e-12)
    assert [a["label"] for a in answers] == ["barolo", "grignolino", "barbera"]
    assert one["explanation"]["contributions"] == pytest.approx(answers[1]["explanation"]["contributions"], abs=1e-12)
    for answer in answers:
        explanation = answer["explanation"]
        assert explanation["model_output"] == f"probability of class {answer['label']}" and explanation["exact"]
        total = explanation["base_value"] + sum(explanation["contributions"].values())
        assert total == pytest.approx(answer["probabilities"][answer["label"]], abs=1e-6)
        assert explanation["additivity_error"] <= 1e-6
    background = stored_background(store, entry.run_id)
    index = list(entry.model.classes_).index("grignolino")
    phi, base = brute_force_shapley(lambda frame: entry.model.predict_proba(frame)[:, index],
                                    entry.X.iloc[[rows[1]]], background[list(entry.X.columns)])
    got = answers[1]["explanation"]
    assert got["base_value"] == pytest.approx(base, abs=1e-9)
    assert np.abs(np.array([got["contributions"][c] for c in entry.X.columns]) - phi).max() <= 1e-9


@pytest.mark.parametrize("name", ["ridge", "forest-regressor"])
def test_a_regression_explanation_adds_up_to_the_prediction(registry: tuple[Store, dict[str, Served]],
                                                            name: str) -> None:
    store, served = registry
    entry = served[name]
    with api_for(store, name) as api:
        answers = api.post("/predict/batch", params={"explain": "true"}, json=records(entry.X.head(4))).json()
        refused = api.post("/predict", params={"explain_class": "1"}, json=records(entry.X.head(1))[0])
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "explain_class"
    assert refused.json()["error"]["message"] == ("explain_class is for multiclass models; this API serves a "
                                                  "regression model")
    for answer in answers:
        explanation = answer["explanation"]
        assert explanation["model_output"] == "prediction" and explanation["exact"] is True
        assert set(explanation["contributions"]) == set(entry.X.columns)
        total = explanation["base_value"] + sum(explanation["contributions"].values())
        assert total == pytest.approx(answer["prediction"], abs=1e-6)
    if name == "ridge":  # a linear model: each contribution is its coefficient times the distance to the mean
        background = stored_background(store, entry.run_id)
        phi, base = brute_force_shapley(entry.model.predict, entry.X.head(1), background[list(entry.X.columns)])
        got = answers[0]["explanation"]
        assert np.abs(np.array([got["contributions"][c] for c in entry.X.columns]) - phi).max() <= 1e-9


@pytest.mark.parametrize("name", ["ridge", "logistic"])
def test_bad_input_is_422_naming_the_field(registry: tuple[Store, dict[str, Served]], name: str) -> None:
    store, served = registry
    good = records(served[name].X.head(1))[0]
    first = next(iter(good))
    with api_for(store, name) as api:
        for change, field in (({first: "high"}, first), ({first: None, "colour": 1}, "colour")):
            answer = api.post("/predict", json={**good, **change})
            assert answer.status_code == 422 and answer.json()["error"]["field"] == field
            in_batch = api.post("/predict/batch", json=[good, {**good, **change}])
            assert in_batch.status_code == 422 and in_batch.json()["error"]["field"] == f"1.{field}"
        missing = api.post("/predict", json={k: v for k, v in good.items() if k != first})
        assert missing.status_code == 422 and missing.json()["error"]["field"] == first
        assert "\n" not in missing.json()["error"]["message"]


def test_the_schema_says_which_shape_each_task_answers(registry: tuple[Store, dict[str, Served]]) -> None:
    store, _ = registry
    shapes = {}
    for name in ("ridge", "logistic"):
        with api_for(store, name) as api:
            spec = api.get("/openapi.json").json()
            assert api.get("/docs").status_code == 200
        post = spec["paths"]["/predict"]["post"]
        assert all(words in post["description"] for words in ("binary", "multiclass", "regress"))
        answer = post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        batch = spec["paths"]["/predict/batch"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert batch["items"]["$ref"].split("/")[-1] == answer
        shapes[name] = spec["components"]["schemas"][answer]
        parameters = {p["name"]: p for p in post["parameters"]}
        if name == "logistic":  # only a multiclass API offers explain_class, its labels as the enum
            assert parameters["explain_class"]["schema"]["enum"] == ["barbera", "barolo", "grignolino"]
        else:
            assert "explain_class" not in parameters and "explain" in parameters
    assert set(shapes["ridge"]["properties"]) == {"prediction", "model", "request_id", "explanation"}
    assert "request_id" in shapes["ridge"]["required"] and "request_id" in shapes["logistic"]["required"]
    assert shapes["ridge"]["properties"]["prediction"]["type"] == "number"
    assert set(shapes["logistic"]["properties"]) == {"label", "probabilities", "model", "request_id", "explanation"}
    assert shapes["logistic"]["properties"]["label"]["enum"] == ["barbera", "barolo", "grignolino"]


def test_metrics_count_the_predictions_of_a_regressor(registry: tuple[Store, dict[str, Served]]) -> None:
    store, served = registry
    with api_for(store, "ridge") as api:
        api.post("/predict", json=records(served["ridge"].X.head(1))[0])
        api.post("/predict/batch", json=records(served["ridge"].X.head(7)))
        text = api.get("/metrics").text
    assert 'mlscope_api_requests_total{method="POST",path="/predict",status="200"}' in text
    assert 'mlscope_api_predicted_rows_total{endpoint="batch"} 7.0' in text
    assert 'mlscope_api_model_info{alias="production",name="ridge",version="1"} 1.0' in text


def test_a_version_of_another_task_is_not_swapped_in(registry: tuple[Store, dict[str, Served]]) -> None:
    store, _ = registry
    X, y = diabetes()
    register(store, "swapped", diabetes, Ridge(), explain=False)
    with api_for(store, "swapped", poll_seconds=0.05) as api:
        classifier = register(store, "swapped", lambda: (X, (y > y.median()).astype(int)), LogisticRegression(),
                              explain=False)
        deadline = time.monotonic() + 30
        while not api.get("/model").json()["registry_problem"] and time.monotonic() < deadline:
            time.sleep(0.05)
        problem = api.get("/model").json()["registry_problem"]
        assert f"version {classifier.version} answers as a binary model, the API as a regression one" in problem
        assert set(api.post("/predict", json=records(X.head(1))[0]).json()) == {"prediction", "model", "request_id"}
