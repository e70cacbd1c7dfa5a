"""The prediction API over HTTP (TestClient) against a real registry: answers equal to the registered
model, validation, explanations, readiness, metrics."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlscope.data.loader import load_titanic
from mlscope.serving.app import build_api
from mlscope.training.features import raw_features
from tests.conftest import Store

pytestmark = pytest.mark.slow

THIRD_CLASS_MAN = {"pclass": 3, "sex": "male", "age": 22.0, "sibsp": 1, "parch": 0, "fare": 7.25}
FIRST_CLASS_WOMAN = {"pclass": 1, "sex": "female", "age": 28, "sibsp": 0, "parch": 0, "fare": 100}
FIELDS = {"Pclass": "pclass", "Sex": "sex", "Age": "age", "SibSp": "sibsp", "Parch": "parch", "Fare": "fare",
          "Embarked": "embarked"}


@pytest.fixture(scope="module")
def served_store(trained, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A copy of the trained store, so alias changes here never reach other tests."""
    store, _ = trained
    copy = Store(tmp_path_factory.mktemp("served"))
    shutil.copy(store.root / "mlflow.db", copy.root / "mlflow.db")
    return copy


@pytest.fixture(scope="module")
def api(served_store: Store) -> Iterator[TestClient]:
    with TestClient(build_api(served_store.settings())) as client:
        yield client


def registered_model(store: Store, version: str) -> Any:
    import mlflow.sklearn

    from mlscope.tracking.client import allow_model_loading, bind_fluent_api

    settings = store.settings()
    bind_fluent_api(settings)
    with allow_model_loading(settings):
        return mlflow.sklearn.load_model(f"models:/titanic-survival/{version}")


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict("records"):
        out.append({FIELDS[k]: (None if isinstance(v, float) and v != v else v) for k, v in row.items()})
    for record in out:
        for key in ("pclass", "sibsp", "parch"):
            record[key] = int(record[key])
    return out


def expected(model: Any, passengers: list[dict[str, Any]]) -> np.ndarray:
    frame = pd.DataFrame([{raw: p.get(field) for raw, field in FIELDS.items()} for p in passengers])
    for column in ("Pclass", "Age", "SibSp", "Parch", "Fare"):
        frame[column] = frame[column].astype("float64")
    frame["Embarked"] = frame["Embarked"].astype(object).where(frame["Embarked"].notna(), np.nan)
    return model.predict_proba(frame)[:, 1]


def test_service_endpoints(api: TestClient) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    ready = api.get("/ready")
    assert ready.status_code == 200 and ready.json()["model"] == {"name": "titanic-survival", "version": "3"}
    answer = api.get("/model")
    model = answer.json()
    assert model["alias"] == "production" and model["version"] == "3" and len(model["run_id"]) == 32
    assert 0.8 < model["metrics"]["roc_auc"] < 0.9 and model["loaded_at"]
    assert model["pid"] == ready.json()["pid"] == os.getpid()  # the process that answered
    assert "x-mlscope-worker" not in answer.headers  # one process: no worker to name
    assert set(model["input_schema"]["properties"]) == set(FIELDS.values())
    assert model["explanations"] == "exact Shapley values" and model["inference"]
    docs, redoc, spec = api.get("/docs"), api.get("/redoc"), api.get("/openapi.json").json()
    assert docs.status_code == redoc.status_code == 200
    examples = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert [e["value"]["sex"] for e in examples.values()] == ["male", "female"]


def test_product_examples(api: TestClient, served_store: Store) -> None:
    man = api.post("/predict", json=THIRD_CLASS_MAN).json()
    assert man["survived"] == 0 and man["prediction_text"] == "Did not survive"
    assert man["model"] == {"name": "titanic-survival", "version": "3"}
    woman = api.post("/predict", json={**FIRST_CLASS_WOMAN, "sex": "FEMALE", "embarked": "c"}).json()
    assert woman["survived"] == 1 and woman["probability"] > 0.5 and woman["prediction_text"] == "Survived"
    model = registered_model(served_store, "3")
    assert man["probability"] == pytest.approx(expected(model, [THIRD_CLASS_MAN])[0], abs=1e-12)


def test_batch_equals_the_registered_model_on_every_passenger(api: TestClient, served_store: Store) -> None:
    passengers = records(raw_features(load_titanic()))
    passengers += [{**THIRD_CLASS_MAN, "age": None, "fare": None, "embarked": None},
                   {**FIRST_CLASS_WOMAN, "age": 0, "fare": 0}, {**FIRST_CLASS_WOMAN, "age": 120, "fare": 5000}]
    answers = api.post("/predict/batch", json=passengers)
    assert answers.status_code == 200
    probabilities = np.array([a["probability"] for a in answers.json()])
    reference = expected(registered_model(served_store, "3"), passengers)
    assert np.abs(probabilities - reference).max() <= 1e-9
    assert [a["survived"] for a in answers.json()] == (reference > 0.5).astype(int).tolist()
    singles = [api.post("/predict", json=p).json()["probability"] for p in passengers[:25]]
    assert np.abs(np.array(singles) - reference[:25]).max() <= 1e-9
    assert api.post("/predict/batch", json=[]).json() == []


def test_explanations_add_up_to_the_answer(api: TestClient) -> None:
    one = api.post("/predict", params={"explain": "true"}, json=THIRD_CLASS_MAN).json()
    explanation = one["explanation"]
    assert set(explanation["contributions"]) == set(FIELDS.values())
    assert explanation["exact"] is True and explanation["background_size"] == 100
    assert explanation["standard_errors"] is None and explanation["model_output"] == "probability of class 1"
    assert explanation["additivity_error"] <= 1e-6
    total = explanation["base_value"] + sum(explanation["contributions"].values())
    assert total == pytest.approx(one["probability"], abs=1e-6)
    assert explanation["contributions"]["sex"] < 0  # being a man lowers the survival probability
    many = api.post("/predict/batch", params={"explain": "true"}, json=[THIRD_CLASS_MAN, FIRST_CLASS_WOMAN]).json()
    assert many[0]["explanation"]["contributions"] == pytest.approx(explanation["contributions"], abs=1e-12)
    for answer in many:
        contributions = answer["explanation"]["contributions"]
        assert answer["explanation"]["base_value"] + sum(contributions.values()) == pytest.approx(
            answer["probability"], abs=1e-6)
    assert "explanation" not in api.post("/predict", json=THIRD_CLASS_MAN).json()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pclass": 4}, "pclass"),
        ({"pclass": True}, "pclass"),
        ({"pclass": "1"}, "pclass"),
        ({"pclass": 1.5}, "pclass"),
        ({"sex": "other"}, "sex"),
        ({"sex": None}, "sex"),
        ({"age": -1}, "age"),
        ({"age": 121}, "age"),
        ({"age": "22"}, "age"),
        ({"sibsp": -1}, "sibsp"),
        ({"sibsp": 1.5}, "sibsp"),
        ({"parch": False}, "parch"),
        ({"parch": "0"}, "parch"),
        ({"fare": -0.01}, "fare"),
        ({"embarked": "X"}, "embarked"),
        ({"name": "Braund"}, "name"),
    ],
)
def test_bad_fields_get_422_naming_the_field(api: TestClient, change: dict[str, Any], field: str) -> None:
    answer = api.post("/predict", json={**THIRD_CLASS_MAN, **change})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["field"] == field and field in error["message"] and "\n" not in error["message"]
    in_batch = api.post("/predict/batch", json=[THIRD_CLASS_MAN, {**THIRD_CLASS_MAN, **change}])
    assert in_batch.status_code == 422 and in_batch.json()["error"]["field"] == f"1.{field}"


def test_missing_field_malformed_body_and_wrong_shapes(api: TestClient) -> None:
    missing = api.post("/predict", json={k: v for k, v in THIRD_CLASS_MAN.items() if k != "fare"})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "fare"
    broken = api.post("/predict", content=b'{"pclass": 3,', headers={"content-type": "application/json"})
    assert broken.status_code == 422
    assert api.post("/predict", json=[THIRD_CLASS_MAN]).status_code == 422
    assert api.post("/predict/batch", json=THIRD_CLASS_MAN).status_code == 422
    assert api.post("/predict", params={"explain": "maybe"}, json=THIRD_CLASS_MAN).json()["error"]["field"] == "explain"


def test_batch_limit_is_413(served_store: Store) -> None:
    with TestClient(build_api(served_store.settings(max_batch_rows=3))) as small:
        assert small.post("/predict/batch", json=[THIRD_CLASS_MAN] * 3).status_code == 200
        refused = small.post("/predict/batch", json=[THIRD_CLASS_MAN] * 4)
        assert refused.status_code == 413 and "limit is 3" in refused.json()["error"]["message"]
        huge = small.post("/predict/batch", content=b"[" + b" " * 10_000 + b"]",
                          headers={"content-type": "application/json"})
        assert huge.status_code == 413 and huge.json()["error"]["field"] == "body"


def test_metrics_in_prometheus_format(api: TestClient) -> None:
    api.post("/predict", json=THIRD_CLASS_MAN)
    api.post("/predict", json={**THIRD_CLASS_MAN, "pclass": 9})
    text = api.get("/metrics").text
    assert 'mlscope_api_requests_total{method="POST",path="/predict",status="200"}' in text
    assert 'mlscope_api_errors_total{path="/predict",status="422"}' in text
    assert 'mlscope_api_request_seconds_bucket{le="0.005",path="/predict"}' in text
    assert 'mlscope_api_model_info{alias="production",name="titanic-survival",version="3"} 1.0' in text
    assert "mlscope_api_model_loaded 1.0" in text


def test_not_ready_until_the_alias_exists_then_loads_by_itself(served_store: Store) -> None:
    settings = served_store.settings(alias="canary", retry_seconds=0.05)
    with TestClient(build_api(settings)) as api:
        assert api.get("/health").status_code == 200
        ready = api.get("/ready")
        assert ready.status_code == 503 and "alias 'canary'" in ready.json()["error"]["message"]
        refused = api.post("/predict", json=THIRD_CLASS_MAN)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "not_ready"
        served_store.client().set_registered_model_alias("titanic-survival", "canary", "1")
        deadline = time.monotonic() + 30
        while api.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.post("/predict", json=THIRD_CLASS_MAN).json()["model"]["version"] == "1"


def test_unreachable_registry_is_503_with_the_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = Store(tmp_path).settings().model_copy(update={"tracking_uri": "http://127.0.0.1:9",
                                                             "registry_uri": "http://127.0.0.1:9"})
    with TestClient(build_api(settings)) as api:
        ready = api.get("/ready")
        assert ready.status_code == 503
        message = ready.json()["error"]["message"]
        assert message.startswith("no model loaded: ") and "\n" not in message
        assert api.get("/model").status_code == 503


def log_plain_model(store: Store, registered_name: str) -> tuple[Any, str]:
    """An sklearn pipeline logged the stock MLflow way (not by mlscope) as a new version; (model, version)."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from mlscope.tracking.client import bind_fluent_api

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"width": rng.normal(size=200), "colour": rng.choice(["red", "blue"], size=200)})
    target = (frame["width"] + (frame["colour"] == "red") > 0.5).astype(int)
    pipeline = make_pipeline(ColumnTransformer([("colour", OneHotEncoder(), ["colour"])], remainder="passthrough"),
                             LogisticRegression()).fit(frame, target)
    bind_fluent_api(store.settings())
    with mlflow.start_run(experiment_id=store.experiment("plain-mlflow")):
        info = mlflow.sklearn.log_model(pipeline, name="model", signature=infer_signature(frame, pipeline.predict(frame)),
                                        registered_model_name=registered_name)
    return pipeline, str(info.registered_model_version)


def test_a_model_logged_by_plain_mlflow_gets_a_schema_from_its_signature(store: Store) -> None:
    pipeline, version = log_plain_model(store, "other-model")
    store.client().set_registered_model_alias("other-model", "production", version)
    settings = store.settings()

    with TestClient(build_api(settings.model_copy(update={"model_name": "other-model"}))) as api:
        answer = api.post("/predict", json={"width": 1.5, "colour": "blue"}).json()
        reference = pipeline.predict_proba(pd.DataFrame({"width": [1.5], "colour": ["blue"]}))[0, 1]
        assert answer["probability"] == pytest.approx(reference, abs=1e-12) and answer["prediction"] == 1
        assert answer["model"] == {"name": "other-model", "version": "1"}
        assert set(api.get("/model").json()["input_schema"]["properties"]) == {"width", "colour"}
        unknown = api.post("/predict", json={"width": 1.5, "colour": "blue", "pclass": 3})
        assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "pclass"
        wrong = api.post("/predict", json={"width": "wide", "colour": "blue"})
        assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "width"
        no_explainer = api.post("/predict", params={"explain": "true"}, json={"width": 1.5, "colour": "blue"})
        assert no_explainer.status_code == 422 and no_explainer.json()["error"]["field"] == "explain"
        assert "no logged explanation" in no_explainer.json()["error"]["message"]


def test_a_version_with_other_inputs_is_not_swapped_in(served_store: Store) -> None:
    client = served_store.client()
    client.set_registered_model_alias("titanic-survival", "mixed", "2")
    with TestClient(build_api(served_store.settings(alias="mixed", poll_seconds=0.05))) as api:
        _, version = log_plain_model(served_store, "titanic-survival")
        client.set_registered_model_alias("titanic-survival", "mixed", version)
        deadline = time.monotonic() + 30
        while not api.get("/model").json()["registry_problem"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "takes different inputs" in api.get("/model").json()["registry_problem"]
        assert api.post("/predict", json=THIRD_CLASS_MAN).json()["model"]["version"] == "2"
        assert api.get("/ready").status_code == 200
