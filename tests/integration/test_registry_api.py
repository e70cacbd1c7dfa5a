"""The registry API against real stores: models and versions equal MLflow's own answers, alias changes
move the alias in MLflow and land in the audit trail, and every error names its field."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from sklearn.naive_bayes import GaussianNB

from mlscope.tracking import registry_view
from mlscope.tracking.client import bind_fluent_api
from mlscope.web.app import create_app
from tests.conftest import Store, copy_of

MODEL = "titanic-survival"


def api(store: Store, **overrides: object) -> TestClient:
    return TestClient(create_app(store.settings(**overrides)))


@pytest.fixture(scope="module")
def shared(trained: tuple[Store, object]) -> TestClient:
    return api(trained[0])


@pytest.fixture
def copied(trained: tuple[Store, object], tmp_path: Path) -> Store:
    return copy_of(trained[0], tmp_path / "copy")


def current_aliases(client: MlflowClient, name: str = MODEL) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


def not_production(client: MlflowClient) -> str:
    production = current_aliases(client)["production"]
    return next(str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")
                if str(v.version) != production)


def assert_error(response: object, status: int, field: str) -> dict[str, str]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["field"] == field and "\n" not in error["message"] and error["message"]
    return error


# ---- reads ----

def test_models_list_equals_mlflow(trained: tuple[Store, object], shared: TestClient) -> None:
    client = trained[0].client()
    body = shared.get("/api/models").json()
    assert body["total"] == len(body["models"]) == len(client.search_registered_models())
    [model] = [m for m in body["models"] if m["name"] == MODEL]
    versions = client.search_model_versions(f"name = '{MODEL}'")
    registered = client.get_registered_model(MODEL)
    assert model["versions"] == len(versions) == 4
    assert model["latest_version"] == str(max(int(v.version) for v in versions))
    assert model["aliases"] == current_aliases(client) and set(model["aliases"]) == {"production", "staging"}
    assert model["description"] == registered.description
    assert model["last_updated"] >= registered.last_updated_timestamp


def test_model_detail_equals_mlflow(trained: tuple[Store, object], shared: TestClient) -> None:
    client = trained[0].client()
    body = shared.get(f"/api/models/{MODEL}").json()
    aliases = current_aliases(client)
    assert body["aliases"] == aliases
    assert [v["version"] for v in body["versions"]] == ["4", "3", "2", "1"]  # newest first
    for view in body["versions"]:
        version = client.get_model_version(MODEL, view["version"])
        run = client.get_run(version.run_id)
        assert view["status"] == version.status and view["created"] == version.creation_timestamp
        assert view["run"] == {"run_id": run.info.run_id, "run_name": run.info.run_name, "status": "FINISHED",
                               "link": f"/runs/{run.info.run_id}", "state": "active", "linked_by": "run_id"}
        assert view["model_type"] == run.data.params["model_type"] == version.tags["model_type"]
        assert view["metrics_from"] == "tags"
        for key in ("roc_auc", "accuracy", "f1", "log_loss"):
            assert view["metrics"][key] == pytest.approx(run.data.metrics[key], rel=1e-12)
        assert view["aliases"] == sorted(a for a, v in aliases.items() if v == view["version"])
        assert view["explain"] == f"/models/{MODEL}/versions/{view['version']}/explain"


def test_history_of_the_trained_store(trained: tuple[Store, object], shared: TestClient) -> None:
    production = current_aliases(trained[0].client())["production"]
    events = shared.get(f"/api/models/{MODEL}/history").json()["events"]
    assert {e["alias"] for e in events} == {"production", "staging"}
    assert all(e["action"] == "set" and e["from_version"] is None and e["to_version"] == production for e in events)
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)


def test_plain_mlflow_versions_fall_back_to_run_metrics_and_survive_deleted_runs(store: Store) -> None:
    bind_fluent_api(store.settings())
    with mlflow.start_run(experiment_id=store.experiment("plain"), run_name="nb") as run:
        mlflow.log_metrics({"roc_auc": 0.71, "accuracy": 0.64, "custom": 3.0})
        mlflow.log_param("model_type", "naive_bayes")
        info = mlflow.sklearn.log_model(GaussianNB().fit([[0.0], [1.0]], [0, 1]), name="model",
                                        pip_requirements=["scikit-learn"], serialization_format="cloudpickle")
    mlflow.register_model(info.model_uri, "plain")  # no metric.* tags
    client = store.client()
    client.create_model_version("plain", source=str(store.root / "gone"), run_id="0" * 32)  # run never existed
    client.create_model_version("plain", source=str(store.root / "loose"))  # no run at all
    http = api(store)

    first, missing, loose = sorted(http.get("/api/models/plain").json()["versions"], key=lambda v: v["version"])
    assert first["metrics_from"] == "run" and first["metrics"] == {"roc_auc": 0.71, "accuracy": 0.64}
    assert first["model_type"] == "naive_bayes" and first["run"]["run_name"] == "nb"
    assert (missing["run"]["state"], missing["run"]["link"], missing["metrics_from"]) == ("missing", None, "none")
    assert (loose["run"]["state"], loose["run"]["run_id"], loose["metrics"]) == ("none", None, {})

    client.delete_run(run.info.run_id)
    first = http.get("/api/models/plain").json()["versions"][-1]
    assert first["version"] == "1" and first["run"]["state"] == "deleted"
    assert first["metrics"]["roc_auc"] == 0.71  # a deleted run's data is still readable
    [summary] = http.get("/api/models").json()["models"]
    assert (summary["versions"], summary["latest_version"], summary["aliases"]) == (3, "3", {})


def test_every_model_and_version_across_mlflow_pages(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    client = store.client()
    for index in range(5):
        client.create_registered_model(f"m{index}")
        for _ in range(index):
            client.create_model_version(f"m{index}", source=str(store.root / "x"))
    monkeypatch.setattr(registry_view, "MODELS_PAGE", 2)
    monkeypatch.setattr(registry_view, "VERSIONS_PAGE", 3)
    http = api(store)
    body = http.get("/api/models").json()
    assert [(m["name"], m["versions"], m["latest_version"]) for m in body["models"]] == [
        ("m0", 0, None), ("m1", 1, "1"), ("m2", 2, "2"), ("m3", 3, "3"), ("m4", 4, "4")]
    assert [v["version"] for v in http.get("/api/models/m4").json()["versions"]] == ["4", "3", "2", "1"]


# ---- alias changes ----

def test_set_move_remove_are_real_and_audited(copied: Store) -> None:
    client, http = copied.client(), api(copied)
    before = current_aliases(client)
    target = not_production(client)

    made = http.post(f"/api/models/{MODEL}/aliases", json={"alias": "candidate", "version": target,
                                                             "reason": "  shadow traffic  "})
    assert made.status_code == 200, made.text
    assert made.json() | {"at": None} == {
        "action": "set", "alias": "candidate", "version": target, "previous_version": None, "from_version": None,
        "to_version": target, "by": "tester", "at": None, "reason": "shadow traffic"}

    moved = http.post(f"/api/models/{MODEL}/aliases", json={"alias": "production", "version": int(target),
                                                              "reason": "better AUC"}).json()
    assert (moved["action"], moved["from_version"], moved["to_version"]) == ("move", before["production"], target)
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == target

    removed = http.post(f"/api/models/{MODEL}/aliases/staging/remove", json={"reason": "staging retired"}).json()
    assert (removed["action"], removed["from_version"], removed["to_version"]) == ("remove", before["staging"], None)
    assert current_aliases(client) == {"candidate": target, "production": target}

    detail = http.get(f"/api/models/{MODEL}").json()
    assert detail["aliases"] == current_aliases(client)
    assert [v["aliases"] for v in detail["versions"] if v["version"] == target] == [["candidate", "production"]]
    events = http.get(f"/api/models/{MODEL}/history").json()["events"]
    recent = [(e["action"], e["alias"], e["from_version"], e["to_version"], e["by"], e["reason"]) for e in events[:3]]
    assert recent == [
        ("remove", "staging", before["staging"], None, "tester", "staging retired"),
        ("move", "production", before["production"], target, "tester", "better AUC"),
        ("set", "candidate", None, target, "tester", "shadow traffic"),
    ]
    assert len(events) == 5 and events[0]["at"] > events[1]["at"] > events[2]["at"]


@pytest.mark.parametrize("alias", ["bad alias", "latest", "Latest", "v1", "V12", "", "a" * 65, "prod/x", "é"])
def test_invalid_alias_is_422_and_changes_nothing(copied: Store, alias: str) -> None:
    client, http = copied.client(), api(copied)
    before = current_aliases(client)
    assert_error(http.post(f"/api/models/{MODEL}/aliases", json={"alias": alias, "version": "1", "reason": "x"}),
                 422, "alias")
    assert current_aliases(client) == before
    assert len(http.get(f"/api/models/{MODEL}/history").json()["events"]) == 2


def test_bad_requests_name_their_field(copied: Store) -> None:
    client, http = copied.client(), api(copied)
    url = f"/api/models/{MODEL}/aliases"
    production = current_aliases(client)["production"]
    for reason in ("", "   ", "x" * 501):
        assert_error(http.post(url, json={"alias": "qa", "version": "1", "reason": reason}), 422, "reason")
        assert_error(http.post(f"{url}/staging/remove", json={"reason": reason}), 422, "reason")
    assert_error(http.post(url, json={"alias": "qa", "version": "1"}), 422, "reason")
    assert_error(http.post(url, json={"alias": "qa", "reason": "x"}), 422, "version")
    assert_error(http.post(url, json={"alias": "qa", "version": "abc", "reason": "x"}), 422, "version")
    assert_error(http.post(url, content=b"{not json", headers={"Content-Type": "application/json"}), 422, "body")
    assert_error(http.post(url, json={"alias": "qa", "version": "99", "reason": "x"}), 404, "version")
    error = assert_error(http.post(url, json={"alias": "production", "version": production, "reason": "again"}),
                         422, "alias")
    assert error["message"] == f"@production is already on v{production}"
    assert_error(http.post(f"{url}/nope/remove", json={"reason": "x"}), 404, "alias")
    assert http.post(url, json={"alias": "qa", "version": "1", "reason": "x" * 500}).status_code == 200
    assert len(http.get(f"/api/models/{MODEL}/history").json()["events"]) == 3


def test_unknown_model_is_404_everywhere(copied: Store) -> None:
    http = api(copied)
    for response in (http.get("/api/models/nope"), http.get("/api/models/nope/history"),
                     http.post("/api/models/nope/aliases", json={"alias": "bad alias", "version": "1", "reason": ""}),
                     http.post("/api/models/nope/aliases/production/remove", json={"reason": "x"})):
        error = assert_error(response, 404, "model")
        assert error["message"] == "registered model 'nope' not found"


def test_alias_changes_need_the_token_reads_do_not(copied: Store) -> None:
    client, http = copied.client(), api(copied, token="s3cret")
    target = not_production(client)
    url = f"/api/models/{MODEL}/aliases"
    body = {"alias": "production", "version": target, "reason": "better AUC"}
    assert_error(http.post(url, json=body), 401, "token")
    assert_error(http.post(url, json=body, headers={"Authorization": "Bearer wrong"}), 401, "token")
    assert_error(http.post(f"{url}/staging/remove", json={"reason": "x"}), 401, "token")
    assert current_aliases(client)["production"] != target
    assert http.post(url, json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert current_aliases(client)["production"] == target
    for read in ("/api/models", f"/api/models/{MODEL}", f"/api/models/{MODEL}/history"):
        assert http.get(read).status_code == 200
