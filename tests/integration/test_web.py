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


def test_home_opens_the_experiment_view(http: TestClient) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert str(page.url).endswith("/experiments/titanic")
    assert "4 run(s)" in page.text and "best by roc_auc, 0.8437" in page.text
    assert '<script type="module" src="/static/runs.js">' in page.text
    assert http.get("/static/runs.js").status_code == http.get("/static/style.css").status_code == 200
    assert http.get("/experiments/nope").status_code == 404


def test_page_api_sorts_filters_and_pages(http: TestClient) -> None:
    body = http.get("/api/runs/page", params={"order_by": "metrics.roc_auc DESC", "limit": 2}).json()
    assert body["total"] == 4 and len(body["runs"]) == 2 and body["offset"] == 0
    assert body["runs"][0]["is_best"] and body["runs"][0]["name"] == "logistic-regression"
    assert body["runs"][0]["registered"].startswith("v3")
    rest = http.get("/api/runs/page", params={"order_by": "metrics.roc_auc DESC", "offset": 2}).json()
    roc = [r["metrics"]["roc_auc"] for r in body["runs"] + rest["runs"]]
    assert roc == sorted(roc, reverse=True)
    svm = http.get("/api/runs/page", params={"filter": "params.model_type = 'svm'"}).json()
    assert svm["total"] == 1 and svm["runs"][0]["name"] == "svm"
    bad = http.get("/api/runs/page", params={"order_by": "metrics.roc_auc SIDEWAYS"})
    assert bad.status_code == 422 and bad.json()["error"]["message"]


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
    experiment = mlflow.set_experiment("<img src=x onerror=alert(1)>")
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name="<img src=x onerror=alert(1)>"):
        mlflow.log_metric("roc_auc", 0.5)
    page = TestClient(create_app(store.settings())).get("/experiments/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert page.status_code == 200
    assert "<img" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    # run names reach the page only through textContent (tests/integration/test_browser.py)


def test_health(http: TestClient) -> None:
    assert http.get("/health").json() == {"status": "ok"}
