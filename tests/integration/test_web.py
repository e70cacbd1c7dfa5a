"""The web entry point over HTTP (TestClient) against real stores."""

from __future__ import annotations

import mlflow
import pytest
from fastapi.testclient import TestClient

from mlscope.tracking.client import bind_fluent_api
from mlscope.web.app import create_app
from tests.conftest import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def http(trained) -> TestClient:
    store, _ = trained
    return TestClient(create_app(store.settings()))


def test_runs_page_lists_runs_with_the_best_marked(http: TestClient) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name in ("rf-baseline", "rf-tuned", "logistic-regression", "svm"):
        assert name in page.text
    assert page.text.count('class="best"') == 1
    assert "best by roc_auc" in page.text and "@production" in page.text


def test_json_twin(http: TestClient) -> None:
    body = http.get("/api/runs").json()
    assert body["experiment"] == "titanic" and body["metric"] == "roc_auc" and body["direction"] == "max"
    assert len(body["runs"]) == 4
    best = [r for r in body["runs"] if r["is_best"]]
    assert len(best) == 1 and best[0]["run_id"] == body["best_run_id"]
    assert best[0]["metrics"]["roc_auc"] == max(r["metrics"]["roc_auc"] for r in body["runs"])
    by_loss = http.get("/api/runs", params={"metric": "log_loss"}).json()
    assert by_loss["direction"] == "min"
    filtered = http.get("/api/runs", params={"filter": "params.model_type = 'svm'"}).json()
    assert [r["name"] for r in filtered["runs"]] == ["svm"]


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"filter": "metrics.accuracy >>> 1"}, 422, "filter"),
        ({"direction": "sideways"}, 422, "direction"),
        ({"experiment": "nope"}, 404, "experiment"),
    ],
)
def test_errors_have_one_shape(http: TestClient, params: dict[str, str], status: int, field: str) -> None:
    response = http.get("/api/runs", params=params)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"} and error["field"] == field and error["message"]


def test_user_controlled_text_is_escaped(store: Store) -> None:
    bind_fluent_api(store.settings())
    experiment = mlflow.set_experiment("titanic")
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name="<img src=x onerror=alert(1)>"):
        mlflow.log_metric("roc_auc", 0.5)
    page = TestClient(create_app(store.settings())).get("/").text
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_health(http: TestClient) -> None:
    assert http.get("/health").json() == {"status": "ok"}
