"""The web entry point over HTTP (TestClient) against real stores."""

from __future__ import annotations

import os

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


def test_home_opens_the_experiments_list(http: TestClient) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert str(page.url).endswith("/experiments")
    assert '<script type="module" src="/static/experiments.js">' in page.text
    for asset in ("/static/experiments.js", "/static/runs.js", "/static/common.js", "/static/style.css"):
        assert http.get(asset).status_code == 200, asset


def test_every_view_has_a_stable_url(http: TestClient) -> None:
    run_id = http.get("/api/runs").json()["runs"][0]["run_id"]
    for url, module in [("/experiments", "experiments"), ("/experiments/titanic", "runs"),
                        (f"/experiments/titanic/compare?runs={run_id},{run_id}", "compare"), (f"/runs/{run_id}", "run"),
                        (f"/runs/{run_id}/explain", "explain"), ("/models", "registry"),
                        ("/models/titanic-survival", "registry")]:
        page = http.get(url)
        assert page.status_code == 200, url
        assert f'src="/static/{module}.js"' in page.text, url
        assert http.get(f"/static/{module}.js").status_code == 200, module
    version = http.get("/models/titanic-survival/versions/3/explain", follow_redirects=False)
    assert version.status_code == 307 and "/explain?model=titanic-survival&version=3" in version.headers["location"]
    assert http.get("/models/titanic-survival/versions/99/explain").status_code == 404


def test_experiments_api(http: TestClient, trained) -> None:
    store, _ = trained
    body = http.get("/api/experiments").json()
    titanic = next(e for e in body["experiments"] if e["name"] == "titanic")
    runs = store.client().search_runs([titanic["experiment_id"]])
    assert titanic["runs"] == 4 == len(runs)
    best = max(runs, key=lambda r: r.data.metrics["roc_auc"])
    assert titanic["best_value"] == best.data.metrics["roc_auc"] and titanic["best_run_id"] == best.info.run_id
    assert titanic["last_activity"] >= max(r.info.end_time for r in runs)
    by_loss = next(e for e in http.get("/api/experiments", params={"metric": "log_loss"}).json()["experiments"]
                   if e["name"] == "titanic")
    assert by_loss["direction"] == "min" and by_loss["best_value"] == min(r.data.metrics["log_loss"] for r in runs)


def test_columns_api(http: TestClient, trained) -> None:
    store, _ = trained
    body = http.get("/api/experiments/titanic/columns").json()
    runs = store.client().search_runs([store.client().get_experiment_by_name("titanic").experiment_id])
    assert body["metrics"] == sorted({k for r in runs for k in r.data.metrics})
    assert body["params"] == sorted({k for r in runs for k in r.data.params})
    assert http.get("/api/experiments/nope/columns").status_code == 404


def test_plotly_is_served_from_the_package(http: TestClient) -> None:
    import plotly

    response = http.get("/vendor/plotly.min.js")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/javascript")
    assert plotly.__version__.split(".")[0] in response.text[:400] or len(response.content) > 1_000_000


def test_page_api_sorts_filters_and_pages(http: TestClient) -> None:
    body = http.get("/api/runs/page", params={"order_by": "metrics.roc_auc DESC", "limit": 2}).json()
    assert body["total"] == 4 and len(body["runs"]) == 2 and body["offset"] == 0
    assert body["runs"][0]["is_best"] and body["runs"][0]["name"] == "logistic-regression"
    assert body["runs"][0]["registered"].startswith("v3")
    assert body["best_reason"] == "best by roc_auc, 0.8437" and body["direction"] == "max"
    assert body["runs"][0]["params"]["model_type"] == "logistic_regression"
    rest = http.get("/api/runs/page", params={"order_by": "metrics.roc_auc DESC", "offset": 2}).json()
    roc = [r["metrics"]["roc_auc"] for r in body["runs"] + rest["runs"]]
    assert roc == sorted(roc, reverse=True)
    svm = http.get("/api/runs/page", params={"filter": "params.model_type = 'svm'"}).json()
    assert svm["total"] == 1 and svm["runs"][0]["name"] == "svm"
    either = http.get("/api/runs/page", params={"filter": "params.model_type = 'svm' OR params.n_estimators = '200'",
                                                 "order_by": "attributes.run_name"}).json()
    assert either["total"] == 2 and [r["name"] for r in either["runs"]] == ["rf-tuned", "svm"]
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
    ranged = http.get("/api/runs", params={"filter": "params.model_type IN ('svm', 'random_forest') "
                                                     "AND metrics.roc_auc BETWEEN 0 AND 1"}).json()
    assert sorted(r["name"] for r in ranged["runs"]) == ["rf-baseline", "rf-tuned", "svm"]


@pytest.mark.parametrize(("route", "bad", "needle"), [
    ("/api/runs/page", "metrics.accuracy > 0.5 OR (metrics.f1 > 0.5", "'(' at position 27 is never closed"),
    ("/api/runs/page", "metrics.f1 BETWEEN 0.5 OR metrics.f1 < 0.1", "BETWEEN at position 12 needs AND"),
    ("/api/runs/page", "params.model_type IN ()", "empty IN list at position 22"),
    ("/api/runs/page", "metrics.f1 >>> 0.5 OR metrics.f1 < 0.1", "unknown operator '>>>' at position 12"),
    ("/api/runs", "metrics.f1 > 0.5 OR", "expected a clause after 'OR' at position 18"),
])
def test_bad_boolean_filters_are_422_naming_the_problem(http: TestClient, route: str, bad: str, needle: str) -> None:
    response = http.get(route, params={"filter": bad})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "filter" and error["message"].startswith("bad filter") and needle in error["message"]


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
    http = TestClient(create_app(store.settings()))
    page = http.get("/experiments/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert page.status_code == 200
    assert "<img" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    # run names reach the page only through textContent (tests/integration/test_browser.py)


def test_health(http: TestClient) -> None:
    assert http.get("/health").json() == {"status": "ok"}


def test_security_headers_and_no_cors(http: TestClient) -> None:
    response = http.get("/api/runs/page", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers  # no CORS: other origins cannot read the API
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    preflight = http.options("/api/models/titanic-survival/aliases", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_token_protects_reads_only_when_configured(trained) -> None:
    store, _ = trained
    open_reads = TestClient(create_app(store.settings(token="s3cret")))
    assert open_reads.get("/api/experiments").status_code == 200
    closed = TestClient(create_app(store.settings(token="s3cret", protect_reads=True)))
    denied = closed.get("/api/experiments")
    assert denied.status_code == 401 and denied.json()["error"]["field"] == "token"
    assert closed.get("/api/experiments", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert closed.get("/api/experiments", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert closed.get("/health").status_code == 200 and closed.get("/experiments").status_code == 200


def test_unreachable_store_is_a_503_with_a_message_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from mlscope.config import Settings

    from mlscope.cli.ui import web_app

    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)
    http = TestClient(web_app(Settings(tracking_uri="http://127.0.0.1:9", registry_uri="http://127.0.0.1:9",
                                       tracking_retries=1)))  # what `mlscope ui` serves
    started = time.monotonic()
    response = http.get("/api/experiments")
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert message and "\n" not in message
    assert time.monotonic() - started < 30  # MLflow's defaults would retry for minutes
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"


def test_user_set_mlflow_http_waits_win(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlscope.config import Settings
    from mlscope.tracking.client import service_environment

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", raising=False)
    service_environment(Settings(tracking_timeout_seconds=7))
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5" and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
