"""The run API: one run's details checked against MLflow, and its artifact files served safely."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from mlscope.data.loader import TITANIC_FEATURES
from mlscope.errors import BadInput
from mlscope.tracking.run_detail import artifact_tree, checked_artifact_path, content_type, run_artifacts
from mlscope.web.app import create_app
from tests.conftest import Store, copy_of
from tests.live import live_app

pytestmark = pytest.mark.slow

XSS = "<img src=x onerror=alert(1)>"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5d0c1b50000000049454e44ae426082")


@dataclass(frozen=True)
class Site:
    store: Store
    hostile: str  # a run with hostile names, HTML/SVG/JS artifacts and an MLflow 2 style model/ folder
    plain: str  # a run with nothing but a NaN metric
    promoted: str  # the trained run holding the production alias


def _log_hostile_run(client: MlflowClient, store: Store, model_run: str) -> str:
    experiment = client.create_experiment("hostile", artifact_location=str(store.root / "hostile-artifacts"))
    run_id = client.create_run(experiment, run_name=XSS).info.run_id
    client.log_param(run_id, "payload", XSS)
    client.set_tag(run_id, "note", XSS)
    client.log_metric(run_id, "score", 0.25)
    files = store.root / "files"
    (files / "nested" / "deep").mkdir(parents=True)
    (files / "page.html").write_text("<html><script>alert(1)</script></html>")
    (files / "pic.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>')
    (files / "app.js").write_text("alert(1)")
    (files / "data.json").write_text(json.dumps({"a": [1, 2], "b": "<b>"}))
    (files / "notes.txt").write_text("plain text\n")
    (files / "table.csv").write_text("x,y\n1,2\n")
    (files / "tiny.png").write_bytes(PNG)
    (files / "nested" / "deep" / "run.log").write_text("log line\n")
    client.log_artifacts(run_id, str(files))
    logged = client.get_run(model_run).outputs.model_outputs[0].model_id
    mlmodel = Path(client.get_logged_model(logged).artifact_location) / "MLmodel"
    client.log_artifact(run_id, str(mlmodel), "model")
    client.set_terminated(run_id)
    return run_id


@pytest.fixture(scope="module")
def site(trained, tmp_path_factory: pytest.TempPathFactory) -> Site:
    shared, _ = trained
    store = copy_of(shared, tmp_path_factory.mktemp("run-api"))
    client = store.client()
    promoted = client.get_model_version_by_alias("titanic-survival", "production").run_id
    hostile = _log_hostile_run(client, store, promoted)
    plain_experiment = client.create_experiment("plain", artifact_location=str(store.root / "plain-artifacts"))
    plain = client.create_run(plain_experiment, run_name="plain").info.run_id
    client.log_metric(plain, "broken", math.nan)
    client.set_terminated(plain)
    return Site(store, hostile, plain, promoted)


@pytest.fixture(scope="module")
def http(site: Site) -> TestClient:
    return TestClient(create_app(site.store.settings()))


def titanic_runs(site: Site) -> list[Any]:
    client = site.store.client()
    return client.search_runs([client.get_experiment_by_name("titanic").experiment_id])


def assert_error(response: Any, status: int | tuple[int, ...], field: str | None = None) -> dict[str, Any]:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"} and error["message"] and "\n" not in error["message"]
    if field is not None:
        assert error["field"] == field
    return error


def local_listing(artifact_uri: str) -> list[tuple[str, bool, int | None]]:
    """The run's artifacts as the local file system has them (an independent walk)."""
    root = Path(artifact_uri)
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found.append(((Path(folder) / name).relative_to(root).as_posix(), True, None))
        for name in files:
            target = Path(folder) / name
            found.append((target.relative_to(root).as_posix(), False, target.stat().st_size))
    return sorted(found)


# ---- GET /api/runs/{run_id} ----

def test_run_details_equal_mlflow(site: Site, http: TestClient) -> None:
    client = site.store.client()
    for expected in titanic_runs(site):
        run_id = expected.info.run_id
        body = http.get(f"/api/runs/{run_id}").json()
        info = body["info"]
        assert (info["run_id"], info["name"], info["status"], info["experiment_id"], info["experiment_name"]) == (
            run_id, expected.info.run_name, expected.info.status, expected.info.experiment_id, "titanic")
        assert (info["start_time"], info["end_time"], info["user"], info["artifact_uri"]) == (
            expected.info.start_time, expected.info.end_time, expected.info.user_id, expected.info.artifact_uri)
        assert info["duration_ms"] == expected.info.end_time - expected.info.start_time
        assert body["params"] == expected.data.params
        assert body["metrics"] == expected.data.metrics
        assert {"accuracy", "roc_auc", "cv_roc_auc_mean"} <= set(body["metrics"])
        assert body["tags"] == {k: v for k, v in expected.data.tags.items() if not k.startswith("mlflow.")}
        assert body["system_tags"] == {k: v for k, v in expected.data.tags.items() if k.startswith("mlflow.")}
        assert body["system_tags"]["mlflow.runName"] == expected.info.run_name
        listed = [(e["path"], e["is_dir"], e["file_size"]) for e in body["artifacts"]["entries"]]
        assert sorted(listed) == local_listing(expected.info.artifact_uri)
        assert [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id)] == [
            entry for entry in listed if "/" not in entry[0]]
        assert {"roc_curve.png", "classification_report.json", "explanations"} <= {p for p, _, _ in listed}
        assert body["artifacts"]["capped"] is False and body["artifacts"]["error"] is None
        assert body["mlflow_ui_url"] is None


def test_signature_is_the_logged_models(site: Site, http: TestClient) -> None:
    client = site.store.client()
    run = client.get_run(site.promoted)
    logged = client.get_logged_model(run.outputs.model_outputs[0].model_id)
    expected = Model.load(str(Path(logged.artifact_location) / "MLmodel")).signature
    body = http.get(f"/api/runs/{site.promoted}").json()
    assert body["model"]["model_id"] == logged.model_id and body["model"]["name"] == "model"
    assert body["model"]["model_uri"] == f"models:/{logged.model_id}"
    assert "sklearn" in body["model"]["flavors"] and body["model"]["note"] is None
    inputs = body["signature"]["inputs"]
    assert [column["name"] for column in inputs] == expected.inputs.input_names() == TITANIC_FEATURES
    assert [(c["type"], c["required"]) for c in inputs] == [
        (spec.type.name, spec.required) for spec in expected.inputs.inputs]
    assert body["signature"]["outputs"] == [{"name": None, "type": "tensor float64 (-1, 2)", "required": True}]


def test_registry_versions_carry_their_aliases(site: Site, http: TestClient) -> None:
    client = site.store.client()
    production = client.get_model_version_by_alias("titanic-survival", "production")
    body = http.get(f"/api/runs/{site.promoted}").json()
    assert body["registry_versions"] == [{
        "name": "titanic-survival", "version": str(production.version), "aliases": ["production", "staging"],
        "status": "READY", "creation_timestamp": production.creation_timestamp, "linked_by": "run_id"}]
    seen = {}
    for run in titanic_runs(site):
        versions = http.get(f"/api/runs/{run.info.run_id}").json()["registry_versions"]
        assert len(versions) == 1 and versions[0]["name"] == "titanic-survival"
        seen[versions[0]["version"]] = versions[0]["aliases"]
        expected = client.search_model_versions(f"run_id = '{run.info.run_id}'")[0]
        assert versions[0]["version"] == str(expected.version)
    assert sorted(seen) == ["1", "2", "3", "4"]
    assert sum(bool(aliases) for aliases in seen.values()) == 1


def test_mlflow_ui_link_when_configured(site: Site) -> None:
    app = create_app(site.store.settings(mlflow_ui_url="http://mlflow.example:5000/"))
    body = TestClient(app).get(f"/api/runs/{site.promoted}").json()
    experiment = body["info"]["experiment_id"]
    assert body["mlflow_ui_url"] == f"http://mlflow.example:5000/#/experiments/{experiment}/runs/{site.promoted}"


def test_plain_run_without_artifacts_or_model(site: Site, http: TestClient) -> None:
    response = http.get(f"/api/runs/{site.plain}")
    assert response.status_code == 200
    body = response.json()
    assert body["artifacts"] == {"entries": [], "capped": False, "limit": 2000, "error": None}
    assert body["model"] is None and body["signature"] is None
    assert body["registry_versions"] == [] and body["registry_error"] is None
    assert body["metrics"] == {"broken": None} and body["params"] == {} and body["tags"] == {}
    assert body["info"]["experiment_name"] == "plain"


def test_hostile_run_values_are_verbatim_and_its_v2_model_is_found(site: Site, http: TestClient) -> None:
    body = http.get(f"/api/runs/{site.hostile}").json()
    assert body["info"]["name"] == XSS and body["params"] == {"payload": XSS} and body["tags"] == {"note": XSS}
    assert body["model"]["model_id"] is None and body["model"]["model_uri"] == f"runs:/{site.hostile}/model"
    assert [column["name"] for column in body["signature"]["inputs"]] == TITANIC_FEATURES
    paths = [entry["path"] for entry in body["artifacts"]["entries"]]
    assert paths == ["app.js", "data.json", "model", "model/MLmodel", "nested", "nested/deep", "nested/deep/run.log",
                     "notes.txt", "page.html", "pic.svg", "table.csv", "tiny.png"]


def test_artifact_walk_is_capped(site: Site) -> None:
    run = site.store.client().get_run(site.hostile)
    tree = artifact_tree(run_artifacts(site.store.settings(), run), limit=5)
    assert tree.capped is True and len(tree.entries) == 5
    assert {entry.path for entry in tree.entries} <= {"app.js", "data.json", "model", "nested", "notes.txt",
                                                      "page.html", "pic.svg", "table.csv", "tiny.png"}


def test_unknown_run_is_404(http: TestClient) -> None:
    for run_id in ("0" * 32, "nope", "x'; DROP TABLE runs; --"):
        assert_error(http.get(f"/api/runs/{run_id}"), 404, "run_id")
    assert_error(http.get(f"/api/runs/{'0' * 32}/artifacts/roc_curve.png"), 404, "run_id")


def test_runs_page_route_is_not_shadowed(http: TestClient) -> None:
    assert "runs" in http.get("/api/runs/page", params={"experiment": "titanic"}).json()


# ---- GET /api/runs/{run_id}/artifacts/{path} ----

def test_images_json_and_text_are_served_inline_with_their_bytes(site: Site, http: TestClient) -> None:
    client = site.store.client()
    with tempfile.TemporaryDirectory() as folder:
        for name, media in [("roc_curve.png", "image/png"), ("explanations/shap_importance.png", "image/png"),
                            ("classification_report.json", "application/json"),
                            ("classification_report.txt", "text/plain; charset=utf-8"),
                            ("predictions.csv", "text/plain; charset=utf-8")]:
            response = http.get(f"/api/runs/{site.promoted}/artifacts/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == media
            assert response.headers["content-disposition"].startswith("inline")
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "sandbox" in response.headers["content-security-policy"]
            assert response.content == Path(client.download_artifacts(site.promoted, name, folder)).read_bytes()
    report = http.get(f"/api/runs/{site.promoted}/artifacts/classification_report.json").json()
    assert len(report["confusion_matrix"]) == 2
    assert http.get(f"/api/runs/{site.hostile}/artifacts/nested/deep/run.log").text == "log line\n"
    assert http.get(f"/api/runs/{site.hostile}/artifacts/model/MLmodel").headers["content-type"].startswith(
        "text/plain")


def test_active_content_is_only_ever_an_attachment(site: Site, http: TestClient) -> None:
    for name, payload in [("page.html", b"<html><script>alert(1)</script></html>"),
                          ("pic.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
                          ("app.js", b"alert(1)")]:
        response = http.get(f"/api/runs/{site.hostile}/artifacts/{name}")
        assert response.status_code == 200 and response.content == payload
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
    forced = http.get(f"/api/runs/{site.hostile}/artifacts/tiny.png", params={"download": "1"})
    assert forced.content == PNG and forced.headers["content-disposition"] == 'attachment; filename="tiny.png"'
    assert_error(http.get(f"/api/runs/{site.hostile}/artifacts/tiny.png", params={"download": "maybe"}), 422,
                 "download")


def test_paths_that_are_not_files_of_the_run_are_refused(site: Site, http: TestClient) -> None:
    run = site.promoted
    for missing in ("nope.png", "explanations", "explanations/nope.json", "tiny.png", "model/MLmodel"):
        assert_error(http.get(f"/api/runs/{run}/artifacts/{missing}"), 404, "artifact_path")
    # another run's artifact: the plain run has none, the hostile run not the trained ones
    assert_error(http.get(f"/api/runs/{site.plain}/artifacts/roc_curve.png"), 404, "artifact_path")
    assert_error(http.get(f"/api/runs/{site.hostile}/artifacts/roc_curve.png"), 404, "artifact_path")


TRAVERSALS = [
    "../mlflow.db", "..%2Fmlflow.db", "..%2F..%2Fetc/passwd", "%2e%2e%2f%2e%2e%2fmlflow.db", "/etc/passwd",
    "a/../../x", "a/%2e%2e/%2e%2e/x", "%00", "tiny.png%00.txt", "nested%5c..%5c..%5cmlflow.db", "nested//deep/run.log",
    "./tiny.png", "nested/./deep/run.log", "../../../../mlflow.db", "..%2F..%2F..%2F..%2Fmlflow.db",
]


def raw_get(base: str, target: str) -> tuple[int, str, bytes]:
    """A request line sent verbatim (no client-side dot-segment normalisation)."""
    host, port = base.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.getheader("content-type") or "", response.read()
    finally:
        connection.close()


def test_traversal_attempts_serve_nothing(site: Site) -> None:
    hostile_dir = site.store.root / "hostile-artifacts" / site.hostile / "artifacts"
    assert (hostile_dir / "../../../mlflow.db").resolve() == (site.store.root / "mlflow.db").resolve()
    other = site.promoted
    attempts = [*TRAVERSALS, f"../../{other}/artifacts/roc_curve.png",
                f"..%2F..%2F{other}%2Fartifacts%2Froc_curve.png"]
    before = set(Path(tempfile.gettempdir()).glob("mlscope-artifact-*"))
    with live_app(create_app(site.store.settings())) as url:
        for attempt in attempts:
            status, kind, body = raw_get(url, f"/api/runs/{site.hostile}/artifacts/{attempt}")
            assert status in (404, 422), (attempt, status)
            assert kind.startswith("application/json"), attempt
            error = json.loads(body)["error"]
            assert set(error) == {"code", "message", "field"}, attempt
            assert b"SQLite format" not in body and b"root:" not in body
        assert raw_get(url, f"/api/runs/{site.hostile}/artifacts/tiny.png")[2] == PNG
    assert set(Path(tempfile.gettempdir()).glob("mlscope-artifact-*")) == before  # temp copies removed


@pytest.mark.parametrize("bad", ["", "/abs", "..", "a/..", "a//b", "a/./b", "a\\b", "a\x00b", "a\nb", "C:x", "./a"])
def test_checked_artifact_path_refuses(bad: str) -> None:
    with pytest.raises(BadInput) as caught:
        checked_artifact_path(bad)
    assert caught.value.field == "artifact_path"


def test_checked_artifact_path_keeps_plain_paths() -> None:
    for good in ("a.txt", "explanations/test.json", "we ird name.csv", "..hidden", "a..b/c"):
        assert checked_artifact_path(good) == good


def test_content_types() -> None:
    assert content_type("x/ROC.PNG") == ("image/png", True)
    assert content_type("a.jpeg") == ("image/jpeg", True)
    assert content_type("model/MLmodel") == ("text/plain; charset=utf-8", True)
    assert content_type("requirements") == ("text/plain; charset=utf-8", True)
    assert content_type("conda.yaml") == ("text/plain; charset=utf-8", True)
    assert content_type("a.json") == ("application/json", True)
    for active in ("a.html", "a.htm", "a.svg", "a.js", "a.xhtml", "a.pdf", "noext", "a.txt.html", "model.pkl"):
        assert content_type(active) == ("application/octet-stream", False), active
