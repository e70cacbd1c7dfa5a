"""The explain view's API over HTTP against real stores: stored explanations as chart data (checked
against `views` and an independent computation), live what-if records (checked against the model's own
predict_proba), comparisons (checked against scipy), and computing explanations for plain MLflow runs."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.models import infer_signature
from scipy.stats import kendalltau, spearmanr
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlscope.data.loader import titanic_path
from mlscope.explain import artifacts, views
from mlscope.explain.dashboard import wait_for_plots
from mlscope.explain.service import stored_explanation
from mlscope.tracking.client import allow_model_loading, bind_fluent_api
from mlscope.web.app import create_app
from tests.conftest import Store, copy_of

pytestmark = pytest.mark.slow
UNKNOWN = "0" * 32
PASSENGER = {"Pclass": 1, "Sex": "female", "Age": 28, "SibSp": 0, "Parch": 0, "Fare": 100.0, "Embarked": "S"}


@pytest.fixture(scope="module")
def http(trained) -> TestClient:
    store, _ = trained
    return TestClient(create_app(store.settings()))


@pytest.fixture(scope="module")
def run_ids(trained) -> dict[str, str]:
    store, _ = trained
    client = store.client()
    experiment = client.get_experiment_by_name("titanic")
    return {r.info.run_name: r.info.run_id for r in client.search_runs([experiment.experiment_id])}


@pytest.fixture(scope="module")
def stored(trained, run_ids) -> dict[str, Any]:
    store, _ = trained
    return {name: stored_explanation(store.client(), run_id) for name, run_id in run_ids.items()}


def roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def sklearn_model(settings: Any, run_id: str) -> Any:
    bind_fluent_api(settings)
    with allow_model_loading(settings):
        return mlflow.sklearn.load_model(f"runs:/{run_id}/model")


def error(response: Any) -> tuple[int, str | None, str]:
    body = response.json()["error"]
    return response.status_code, body["field"], body["message"]


# -- the stored explanation ----------------------------------------------------------------------------------

def test_overview_is_the_stored_explanation(http: TestClient, run_ids, stored) -> None:
    explanation, background = stored["rf-tuned"]
    body = http.get(f"/api/runs/{run_ids['rf-tuned']}/explanation").json()
    assert body["available"] is True and body["missing"] is None and body["can_compute"] is False
    assert body["run_name"] == "rf-tuned" and body["experiment"] == "titanic" and body["model_type"] == "random_forest"
    assert body["global"] == roundtrip(views.global_importance(explanation))
    assert body["beeswarm"] == roundtrip(views.beeswarm(explanation))
    meta = body["metadata"]
    independent = np.abs(explanation.base_value + explanation.values.sum(axis=1) - explanation.outputs).max()
    assert meta["additivity_error"] == pytest.approx(independent, abs=0) and meta["additivity_error"] < 1e-9
    assert meta["method"] == "exact Shapley values" and meta["exact"] is True and meta["max_standard_error"] is None
    assert all(g["standard_error"] is None and g["other"] == 0 for g in body["global"])
    assert meta["background_size"] == len(background) == 100 and meta["background_seed"] == 42
    assert meta["rows"] == 179 and meta["features"] == 7

    kinds = {f["name"]: f for f in body["features"]}
    assert [f["name"] for f in body["features"]] == explanation.features
    assert kinds["Sex"]["kind"] == "categorical" and kinds["Sex"]["categories"] == ["female", "male"]
    assert kinds["Embarked"]["categories"] == ["C", "Q", "S"]
    assert kinds["Age"]["kind"] == "numeric" and kinds["Age"]["integer"] is False
    assert kinds["Pclass"]["min"] == 1 and kinds["Pclass"]["max"] == 3 and kinds["Pclass"]["integer"] is True

    titanic = pd.read_csv(titanic_path()).set_index("PassengerId")
    assert [r["row_id"] for r in body["rows"]] == explanation.row_ids
    for row, output in zip(body["rows"], explanation.outputs, strict=True):
        assert row["name"] == titanic.loc[row["row_id"], "Name"]
        assert row["y_true"] == titanic.loc[row["row_id"], "Survived"]
        assert row["probability"] == output
    assert body["positive_label"] == "survived"


def test_dependence(http: TestClient, run_ids, stored) -> None:
    explanation, _ = stored["svm"]
    url = f"/api/runs/{run_ids['svm']}/explanation/dependence"
    for feature in ("Age", "Sex"):
        body = http.get(url, params={"feature": feature}).json()
        assert body == roundtrip(views.dependence(explanation, feature))
        assert body["colour_feature"] in explanation.features and body["colour_feature"] != feature
    assert error(http.get(url, params={"feature": "Colour"}))[:2] == (422, "feature")
    assert error(http.get(url))[:2] == (422, "feature")
    assert error(http.get(f"/api/runs/{UNKNOWN}/explanation/dependence", params={"feature": "Age"}))[:2] == \
        (404, "run_id")


def test_a_stored_row(http: TestClient, run_ids, stored) -> None:
    explanation, _ = stored["logistic-regression"]
    position = 17
    row_id = explanation.row_ids[position]
    body = http.get(f"/api/runs/{run_ids['logistic-regression']}/explanation/rows/{row_id}").json()
    assert body["waterfall"] == roundtrip(views.waterfall(explanation, position))
    assert body["probability"] == explanation.outputs[position]
    assert body["record"] == roundtrip({f: artifacts.plain_value(explanation.data.iloc[position][f])
                                        for f in explanation.features})
    phi = sum(c["shap"] for c in body["waterfall"]["contributions"])
    assert body["waterfall"]["base_value"] + phi == pytest.approx(body["probability"], abs=1e-9)
    assert body["name"] == pd.read_csv(titanic_path()).set_index("PassengerId").loc[row_id, "Name"]
    missing = http.get(f"/api/runs/{run_ids['logistic-regression']}/explanation/rows/999999")
    assert error(missing)[:2] == (404, "row_id")
    assert error(http.get(f"/api/runs/{UNKNOWN}/explanation/rows/1"))[:2] == (404, "run_id")


def test_unknown_run(http: TestClient) -> None:
    status, field, message = error(http.get(f"/api/runs/{UNKNOWN}/explanation"))
    assert (status, field) == (404, "run_id") and UNKNOWN in message


# -- what-if -------------------------------------------------------------------------------------------------

def test_what_if_is_the_model_and_adds_up(http: TestClient, trained, run_ids, stored) -> None:
    store, _ = trained
    run_id = run_ids["rf-baseline"]
    before = [a.path for a in store.client().list_artifacts(run_id, artifacts.FOLDER)]
    model = sklearn_model(store.settings(), run_id)
    for record in (PASSENGER, {**PASSENGER, "Sex": "male", "Pclass": 3, "Age": None, "Embarked": None}):
        body = http.post(f"/api/runs/{run_id}/explanation/what-if", json={"record": record}).json()
        frame = pd.DataFrame([record])
        for column in ("Pclass", "Age", "SibSp", "Parch", "Fare"):
            frame[column] = frame[column].astype("float64")
        for column in ("Sex", "Embarked"):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
        expected = model.predict_proba(frame)[0, list(model.classes_).index(1)]
        assert body["probability"] == pytest.approx(expected, abs=1e-9)
        waterfall = body["waterfall"]
        total = waterfall["base_value"] + sum(c["shap"] for c in waterfall["contributions"])
        assert total == pytest.approx(body["probability"], abs=1e-6)
        assert waterfall["base_value"] == pytest.approx(stored["rf-baseline"][0].base_value, abs=1e-12)
        assert body["metadata"]["exact"] is True and body["metadata"]["method"] == "exact Shapley values"
    # A stored row sent as a what-if gets the stored numbers back.
    explanation, _ = stored["rf-baseline"]
    record = {f: artifacts.plain_value(explanation.data.iloc[3][f]) for f in explanation.features}
    body = http.post(f"/api/runs/{run_id}/explanation/what-if", json={"record": record}).json()
    assert body["probability"] == pytest.approx(explanation.outputs[3], abs=1e-12)
    live = {c["feature"]: c["shap"] for c in body["waterfall"]["contributions"]}
    assert np.allclose([live[f] for f in explanation.features], explanation.values[3], atol=1e-12)
    after = [a.path for a in store.client().list_artifacts(run_id, artifacts.FOLDER)]
    assert after == before  # nothing logged per keystroke


@pytest.mark.parametrize(
    ("record", "field", "needle"),
    [
        ({"Age": "old"}, "Age", "must be a number"),
        ({"Sex": "robot"}, "Sex", "must be one of female, male"),
        ({"Sex": 1}, "Sex", "must be one of"),
        ({"Pclass": True}, "Pclass", "true/false"),
        ({"Fare": [1, 2]}, "Fare", "must be a number"),
        ({"Colour": "red"}, "record", "unknown feature(s) Colour"),
    ],
)
def test_what_if_bad_values_name_the_feature(http: TestClient, run_ids, record: dict, field: str, needle: str
                                             ) -> None:
    response = http.post(f"/api/runs/{run_ids['svm']}/explanation/what-if", json={"record": {**PASSENGER, **record}})
    status, got_field, message = error(response)
    assert (status, got_field) == (422, field) and needle in message


def test_what_if_request_errors(http: TestClient, run_ids) -> None:
    url = f"/api/runs/{run_ids['svm']}/explanation/what-if"
    assert error(http.post(url, json={}))[:2] == (422, "record")
    assert error(http.post(url, json={"record": [1, 2]}))[:2] == (422, "record")
    assert error(http.post(url, content=b"{nope", headers={"Content-Type": "application/json"}))[0] == 422
    assert error(http.post(f"/api/runs/{UNKNOWN}/explanation/what-if", json={"record": PASSENGER}))[:2] == \
        (404, "run_id")


def test_what_if_latency(http: TestClient, run_ids, record_property) -> None:
    url = f"/api/runs/{run_ids['logistic-regression']}/explanation/what-if"
    for _ in range(3):
        assert http.post(url, json={"record": PASSENGER}).status_code == 200
    seconds = []
    for age in range(50):
        started = time.perf_counter()
        response = http.post(url, json={"record": {**PASSENGER, "Age": float(age)}})
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200
    median_ms = statistics.median(seconds) * 1000
    record_property("what_if_median_ms", round(median_ms, 2))
    print(f"\nwhat-if latency: median {median_ms:.1f} ms over 50 requests (TestClient, warm session)")
    assert median_ms < 250  # shared CI cores; typically ~10 ms


# -- comparison ----------------------------------------------------------------------------------------------

def test_compare_two_runs(http: TestClient, run_ids, stored) -> None:
    first, second = stored["rf-tuned"][0], stored["svm"][0]
    body = http.get("/api/explanations/compare", params={"a": run_ids["rf-tuned"], "b": run_ids["svm"]}).json()
    a, b = np.abs(first.values).mean(axis=0), np.abs(second.values).mean(axis=0)
    assert body["spearman"] == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert body["kendall"] == pytest.approx(kendalltau(a, b).statistic, abs=1e-12)
    assert body["a"]["global"] == roundtrip(views.global_importance(first))
    assert body["b"]["global"] == roundtrip(views.global_importance(second))
    assert body["a"]["top"] == [first.features[j] for j in np.argsort(-a, kind="stable")[:3]]
    assert body["b"]["top"] == [second.features[j] for j in np.argsort(-b, kind="stable")[:3]]
    assert body["a"]["run_name"] == "rf-tuned" and body["shared_rows"] == 179
    same = http.get("/api/explanations/compare", params={"a": run_ids["svm"], "b": run_ids["svm"]}).json()
    assert same["spearman"] == pytest.approx(1.0) and same["kendall"] == pytest.approx(1.0)


def test_compare_errors(http: TestClient, run_ids) -> None:
    url = "/api/explanations/compare"
    assert error(http.get(url, params={"a": run_ids["svm"]}))[:2] == (422, "b")
    assert error(http.get(url, params={"a": UNKNOWN, "b": run_ids["svm"]}))[:2] == (404, "a")
    assert error(http.get(url, params={"a": run_ids["svm"], "b": UNKNOWN}))[:2] == (404, "b")


# -- runs not made by mlscope --------------------------------------------------------------------------------

def plain_run(store: Store, root: Path, features: list[str], *, input_example: bool = False,
              model: bool = True) -> str:
    """A run logged with plain MLflow: a Pipeline on raw columns with a signature, no explanation."""
    titanic = pd.read_csv(titanic_path())
    bind_fluent_api(store.settings())
    client = store.client()
    experiment = client.get_experiment_by_name("plain")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(
        "plain", artifact_location=(root / "plain-artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment_id) as run:
        if not model:
            mlflow.log_metric("accuracy", 0.5)
            return run.info.run_id
        numeric = [f for f in features if pd.api.types.is_numeric_dtype(titanic[f])]
        text = [f for f in features if f not in numeric]
        pipeline = Pipeline([
            ("prepare", ColumnTransformer([
                ("numbers", SimpleImputer(strategy="median"), numeric),
                ("text", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                                   ("onehot", OneHotEncoder(handle_unknown="ignore"))]), text),
            ])),
            ("model", LogisticRegression(max_iter=1000)),
        ]).fit(titanic[features], titanic["Survived"])
        X = titanic[features]
        mlflow.sklearn.log_model(pipeline, name="model", signature=infer_signature(X, pipeline.predict_proba(X)),
                                 input_example=X.head(6) if input_example else None,
                                 serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    return run.info.run_id


@pytest.fixture(scope="module")
def plain(trained, tmp_path_factory) -> Store:
    store, _ = trained
    return copy_of(store, tmp_path_factory.mktemp("explain-plain"))


def test_a_plain_mlflow_run_is_computed_on_demand_with_the_token(plain: Store) -> None:
    run_id = plain_run(plain, plain.root, ["Pclass", "Sex", "Age", "Fare"])
    http = TestClient(create_app(plain.settings(token="s3cret")))
    url = f"/api/runs/{run_id}/explanation"
    before = http.get(url).json()
    assert before["available"] is False and before["can_compute"] is True
    assert "no explanation is stored" in before["missing"] and "Titanic" in before["compute_reason"]
    assert before["global"] == [] and before["rows"] == []

    denied = http.post(url)
    assert error(denied)[:2] == (401, "token")
    assert error(http.post(url, headers={"Authorization": "Bearer wrong"}))[:2] == (401, "token")
    assert http.get(url).json()["available"] is False  # nothing was computed

    computed = http.post(url, headers={"Authorization": "Bearer s3cret"})
    assert computed.status_code == 200 and computed.json()["available"] is True
    after = http.get(url).json()
    assert after["available"] is True and after["metadata"]["rows"] == 200
    assert after["metadata"]["background_size"] == 100 and after["metadata"]["exact"] is True
    assert "shipped Titanic data" in after["metadata"]["data_source"]
    assert after["model_type"] == after["metadata"]["model_type"] == "LogisticRegression"
    assert [f["name"] for f in after["features"]] == ["Pclass", "Sex", "Age", "Fare"]

    # Stored the way mlscope stores explanations, and right.
    explanation, background = stored_explanation(plain.client(), run_id)
    assert wait_for_plots()  # the PNGs (for MLflow's UI) are logged after the answer, in the background
    listed = {a.path for a in plain.client().list_artifacts(run_id, artifacts.FOLDER)}
    assert {f"{artifacts.FOLDER}/{f}" for f in ("test.json", "shap_importance.png", "shap_beeswarm.png")} <= listed
    assert len(background) == 100 and explanation.additivity_errors.max() < 1e-9
    titanic = pd.read_csv(titanic_path()).set_index("PassengerId")
    model = sklearn_model(plain.settings(), run_id)
    rows = titanic.loc[explanation.row_ids, explanation.features]
    assert np.allclose(model.predict_proba(rows)[:, 1], explanation.outputs, atol=1e-12)
    named = {r["row_id"]: r["name"] for r in after["rows"]}
    assert all(named[i] == titanic.loc[i, "Name"] for i in explanation.row_ids)

    # The what-if form works on it too (no token needed: it changes nothing).
    answer = http.post(f"{url}/what-if", json={"record": {"Pclass": 2, "Sex": "male", "Age": 40, "Fare": 20}}).json()
    frame = pd.DataFrame([{"Pclass": 2.0, "Sex": "male", "Age": 40.0, "Fare": 20.0}])
    assert answer["probability"] == pytest.approx(model.predict_proba(frame)[0, 1], abs=1e-9)
    again = http.post(url, headers={"Authorization": "Bearer s3cret"})  # already there: kept as is
    assert again.status_code == 200 and again.json()["metadata"] == after["metadata"]


def test_a_model_on_other_columns_uses_its_input_example(plain: Store) -> None:
    with_example = plain_run(plain, plain.root, ["Pclass", "Sex", "Age", "Fare"], input_example=True)
    http = TestClient(create_app(plain.settings()))
    # Titanic columns win over the input example; a model on columns the shipped data lacks needs one.
    assert "Titanic" in http.get(f"/api/runs/{with_example}/explanation").json()["compute_reason"]

    titanic = pd.read_csv(titanic_path()).rename(columns={"Fare": "Price"})
    bind_fluent_api(plain.settings())
    experiment_id = plain.client().get_experiment_by_name("plain").experiment_id
    runs = {}
    for example in (True, False):
        with mlflow.start_run(experiment_id=experiment_id) as run:
            X = titanic[["Pclass", "Price"]]
            model = LogisticRegression(max_iter=500).fit(X, titanic["Survived"])
            mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, model.predict_proba(X)),
                                     input_example=X.head(8) if example else None,
                                     serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
        runs[example] = run.info.run_id
    view = http.get(f"/api/runs/{runs[True]}/explanation").json()
    assert view["can_compute"] is True and "input example" in view["compute_reason"]
    body = http.post(f"/api/runs/{runs[True]}/explanation").json()
    assert body["available"] is True and body["metadata"]["rows"] == 8 and body["metadata"]["background_size"] == 8
    assert "input example" in body["metadata"]["data_source"] and body["rows"][0]["name"] is None
    assert body["positive_label"] == "class 1"

    view = http.get(f"/api/runs/{runs[False]}/explanation").json()
    assert view["can_compute"] is False and f"mlscope explain {runs[False]} --data file.csv" in view["compute_reason"]
    status, field, message = error(http.post(f"/api/runs/{runs[False]}/explanation"))
    assert (status, field) == (422, "data") and "--data file.csv" in message


def test_a_run_without_a_model(plain: Store) -> None:
    run_id = plain_run(plain, plain.root, [], model=False)
    http = TestClient(create_app(plain.settings()))
    view = http.get(f"/api/runs/{run_id}/explanation").json()
    assert view["available"] is False and view["can_compute"] is False
    assert "no logged model" in view["compute_reason"]
    assert error(http.post(f"/api/runs/{run_id}/explanation"))[:2] == (422, "data")
    assert error(http.get(f"/api/runs/{run_id}/explanation/dependence", params={"feature": "Age"}))[:2] == \
        (404, "run_id")
    assert error(http.post(f"/api/runs/{run_id}/explanation/what-if", json={"record": PASSENGER}))[:2] == \
        (422, "run_id")
    assert error(http.get("/api/explanations/compare", params={"a": run_id, "b": run_id}))[:2] == (404, "a")


# -- the page ------------------------------------------------------------------------------------------------

def test_the_page_names_the_model_version_and_escapes_it(http: TestClient, run_ids) -> None:
    run_id = run_ids["logistic-regression"]
    page = http.get(f"/runs/{run_id}/explain", params={"model": "titanic-survival", "version": "3",
                                                         "versus": run_ids["svm"]})
    assert page.status_code == 200
    assert "model titanic-survival v3" in page.text
    assert f'data-run-id="{run_id}"' in page.text and f'data-versus="{run_ids["svm"]}"' in page.text
    assert '<script type="module" src="/static/explain.js">' in page.text and "/vendor/plotly.min.js" in page.text
    hostile = http.get(f"/runs/{run_id}/explain", params={"model": "<script>alert(1)</script>", "version": "1"})
    assert "<script>alert(1)</script>" not in hostile.text and "&lt;script&gt;" in hostile.text
    assert http.get("/static/explain.js").status_code == 200
