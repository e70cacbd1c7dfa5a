"""A run's note and tags changed through the dashboard's JSON API, read back through MLflow's own client and
through a real `mlflow server`'s REST API (where MLflow's UI reads the description)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from mlscope.config import Settings
from mlscope.web.app import create_app
from tests.conftest import Store, mlflow_state_kept
from tests.tracking_server import mlflow_server
from tests.unit.test_safe_markdown import HOSTILE, assert_inert

NOTE = "mlflow.note.content"
MARKDOWN = ("## Baseline\n\nTrained on the *full* split; see [MLflow](https://mlflow.org).\n\n- `C=1.0`\n- seed 42\n")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """One store for the module (each test makes its own runs in it): creating MLflow's tables takes seconds."""
    return Store(tmp_path_factory.mktemp("annotations"))


@pytest.fixture(scope="module")
def http(shared: Store) -> TestClient:
    return api(shared)


def new_run(store: Store, **tags: str) -> str:
    client = store.client()
    run_id = client.create_run(store.experiment("notes"), run_name="annotated", tags=tags).info.run_id
    client.set_terminated(run_id)
    return run_id


def api(store: Store, **settings: Any) -> TestClient:
    return TestClient(create_app(store.settings(**settings)))


def assert_error(response: Any, status: int, field: str | None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"} and error["field"] == field
    assert error["message"] and "\n" not in error["message"]
    return error["message"]


def tags_of(store: Store, run_id: str) -> dict[str, str]:
    return dict(store.client().get_run(run_id).data.tags)


def test_note_is_the_description_mlflow_reads(shared: Store, http: TestClient) -> None:
    run_id = new_run(shared)
    assert http.get(f"/api/runs/{run_id}").json()["note"] is None

    answer = http.post(f"/api/runs/{run_id}/note", json={"content": MARKDOWN})
    assert answer.status_code == 200, answer.text
    assert tags_of(shared, run_id)[NOTE] == MARKDOWN
    note = answer.json()["note"]
    assert note["content"] == MARKDOWN
    assert note["html"].startswith("<h2>Baseline</h2>") and "<em>full</em>" in note["html"]
    assert '<a href="https://mlflow.org" rel="noopener noreferrer nofollow">MLflow</a>' in note["html"]
    assert "<li><code>C=1.0</code></li>" in note["html"]
    assert answer.json()["system_tags"][NOTE] == MARKDOWN
    assert http.get(f"/api/runs/{run_id}").json()["note"] == note  # survives a reload

    http.post(f"/api/runs/{run_id}/note", json={"content": "replaced"}).raise_for_status()
    assert tags_of(shared, run_id)[NOTE] == "replaced"
    cleared = http.post(f"/api/runs/{run_id}/note", json={"content": "  \n"})
    assert cleared.status_code == 200 and cleared.json()["note"] is None
    assert NOTE not in tags_of(shared, run_id)
    assert http.post(f"/api/runs/{run_id}/note", json={"content": ""}).status_code == 200  # no note: nothing to do


def test_a_note_written_with_mlflow_is_shown_rendered(shared: Store, http: TestClient) -> None:
    import mlflow

    with mlflow_state_kept():
        mlflow.set_tracking_uri(shared.uri)
        mlflow.set_experiment(experiment_id=shared.experiment("notes"))
        with mlflow.start_run(description="# From MLflow\n\n**bold** and <b>raw</b>") as run:
            pass
    body = http.get(f"/api/runs/{run.info.run_id}").json()
    assert body["note"]["content"] == "# From MLflow\n\n**bold** and <b>raw</b>"
    assert body["note"]["html"] == "<h1>From MLflow</h1>\n<p><strong>bold</strong> and &lt;b&gt;raw&lt;/b&gt;</p>\n"


@pytest.mark.parametrize("text", HOSTILE)
def test_a_hostile_note_is_stored_verbatim_and_rendered_inert(shared: Store, http: TestClient, text: str) -> None:
    run_id = new_run(shared)
    answer = http.post(f"/api/runs/{run_id}/note", json={"content": text})
    assert answer.status_code == 200 and tags_of(shared, run_id)[NOTE] == text
    assert_inert(answer.json()["note"]["html"])
    assert_inert(http.get(f"/api/runs/{run_id}").json()["note"]["html"])
    preview = http.post("/api/markdown", json={"content": text})
    assert preview.json()["html"] == answer.json()["note"]["html"]


def test_user_tags_are_added_changed_and_removed(shared: Store, http: TestClient) -> None:
    run_id = new_run(shared, **{"mlscope.task": "binary_classification"})
    url = f"/api/runs/{run_id}/tags"
    odd = ["owner", "team/owner", "a b:c.d-e_f", "ünïcode"]
    for key in odd:
        answer = http.post(url, json={"key": key, "value": f"<{key}>"})
        assert answer.status_code == 200, answer.text
    assert {key: tags_of(shared, run_id)[key] for key in odd} == {key: f"<{key}>" for key in odd}
    body = answer.json()
    assert body["tags"] == {"mlscope.task": "binary_classification", **{key: f"<{key}>" for key in odd}}
    assert body["read_only_tags"] == ["mlscope.task"] and body["run_id"] == run_id

    http.post(url, json={"key": "owner", "value": "data team\nsecond line"}).raise_for_status()
    http.post(url, json={"key": "empty", "value": ""}).raise_for_status()
    assert tags_of(shared, run_id)["owner"] == "data team\nsecond line" and tags_of(shared, run_id)["empty"] == ""
    removed = http.post(f"{url}/remove", json={"key": "team/owner"})
    assert removed.status_code == 200 and "team/owner" not in removed.json()["tags"]
    assert "team/owner" not in tags_of(shared, run_id)
    detail = http.get(f"/api/runs/{run_id}").json()
    assert detail["tags"] == {k: v for k, v in tags_of(shared, run_id).items() if not k.startswith("mlflow.")}
    assert detail["read_only_tags"] == ["mlscope.task"]


# Keys MLflow itself refuses: each is refused with a 422 naming `key` before anything is written.
MLFLOW_REFUSES = ["a" * 251, "x<y", "semi;colon", "new\nline", "a//b", "a/", "/a", "..", "./a", "a/../b", "..a", ""]


def test_keys_mlflow_refuses_are_refused_first(shared: Store, http: TestClient) -> None:
    run_id = new_run(shared)
    before = tags_of(shared, run_id)
    client = shared.client()
    for key in MLFLOW_REFUSES:
        message = assert_error(http.post(f"/api/runs/{run_id}/tags", json={"key": key, "value": "v"}), 422, "key")
        assert "tag key" in message
        with pytest.raises(Exception, match="(?i)invalid|name|length|key"):
            client.set_tag(run_id, key, "v")
    assert "longer than 250" in assert_error(
        http.post(f"/api/runs/{run_id}/tags", json={"key": "a" * 251, "value": "v"}), 422, "key")
    assert assert_error(http.post(f"/api/runs/{run_id}/tags", json={"key": "  ", "value": "v"}), 422,
                        "key") == "tag key is empty"
    assert tags_of(shared, run_id) == before
    assert http.post(f"/api/runs/{run_id}/tags", json={"key": "a" * 250, "value": "v"}).status_code == 200


def test_values_beyond_mlflows_limit_are_refused_not_cut(shared: Store, http: TestClient) -> None:
    run_id = new_run(shared)
    long = "x" * 8001
    assert "8000" in assert_error(http.post(f"/api/runs/{run_id}/tags", json={"key": "k", "value": long}), 422,
                                  "value")
    assert "8000" in assert_error(http.post(f"/api/runs/{run_id}/note", json={"content": long}), 422, "content")
    assert "8000" in assert_error(http.post("/api/markdown", json={"content": long}), 422, "content")
    assert "NUL" in assert_error(http.post(f"/api/runs/{run_id}/tags", json={"key": "k", "value": "a\x00b"}), 422,
                                 "value")
    assert "k" not in tags_of(shared, run_id) and NOTE not in tags_of(shared, run_id)
    http.post(f"/api/runs/{run_id}/note", json={"content": "y" * 8000}).raise_for_status()
    assert tags_of(shared, run_id)[NOTE] == "y" * 8000


def test_system_and_mlscope_tags_are_read_only(shared: Store, http: TestClient) -> None:
    run_id = new_run(shared, **{"mlscope.task": "binary_classification", "mlflow.parentRunId": "0" * 32,
                               "mlflow.log-model.history": "[]"})
    before = tags_of(shared, run_id)
    for key in ("mlflow.runName", "mlflow.parentRunId", "mlflow.log-model.history", "mlflow.user"):
        for route, body in (("tags", {"key": key, "value": "x"}), ("tags/remove", {"key": key})):
            message = assert_error(http.post(f"/api/runs/{run_id}/{route}", json=body), 422, "key")
            assert f"tag '{key}' is an MLflow system tag and read-only here" in message
    for route, body in (("tags", {"key": "mlscope.task", "value": "regression"}),
                        ("tags/remove", {"key": "mlscope.task"}), ("tags", {"key": "mlscope.new", "value": "x"})):
        message = assert_error(http.post(f"/api/runs/{run_id}/{route}", json=body), 422, "key")
        assert "is set by mlscope and read-only here" in message
    message = assert_error(http.post(f"/api/runs/{run_id}/tags", json={"key": NOTE, "value": "x"}), 422, "key")
    assert message == "'mlflow.note.content' is the run's note: edit it as the note"
    assert tags_of(shared, run_id) == before


def test_unknown_deleted_and_missing(shared: Store, http: TestClient) -> None:
    run_id = new_run(shared, owner="me")
    requests = [("note", {"content": "x"}), ("tags", {"key": "k", "value": "v"}), ("tags/remove", {"key": "owner"})]
    for route, body in requests:
        message = assert_error(http.post(f"/api/runs/{'0' * 32}/{route}", json=body), 404, "run_id")
        assert message == f"run '{'0' * 32}' not found"
        assert_error(http.post(f"/api/runs/not..a..run/{route}", json=body), 404, "run_id")
    assert assert_error(http.post(f"/api/runs/{run_id}/tags/remove", json={"key": "nope"}), 404,
                        "key") == f"run '{run_id}' has no tag 'nope'"
    shared.client().delete_run(run_id)
    before = tags_of(shared, run_id)
    for route, body in requests:
        message = assert_error(http.post(f"/api/runs/{run_id}/{route}", json=body), 409, "run_id")
        assert message == f"run '{run_id}' is deleted: restore it in MLflow before changing its note or tags"
    assert tags_of(shared, run_id) == before


def test_malformed_bodies_name_the_field(shared: Store, http: TestClient) -> None:
    run_id = new_run(shared)
    assert_error(http.post(f"/api/runs/{run_id}/note", json={}), 422, "content")
    assert_error(http.post(f"/api/runs/{run_id}/tags", json={"key": "k"}), 422, "value")
    assert_error(http.post(f"/api/runs/{run_id}/tags", json={"key": 3, "value": "v"}), 422, "key")
    assert_error(http.post(f"/api/runs/{run_id}/tags/remove", content=b"{nope",
                           headers={"Content-Type": "application/json"}), 422, "body")


def test_changes_need_the_token_reads_do_not(shared: Store) -> None:
    run_id, http = new_run(shared, owner="me"), api(shared, token="s3cret")
    requests = [("note", {"content": "x"}), ("tags", {"key": "k", "value": "v"}), ("tags/remove", {"key": "owner"})]
    before = tags_of(shared, run_id)
    for route, body in requests:
        url = f"/api/runs/{run_id}/{route}"
        assert "dashboard token" in assert_error(http.post(url, json=body), 401, "token")
        assert_error(http.post(url, json=body, headers={"Authorization": "Bearer wrong"}), 401, "token")
        assert_error(http.post(url, json=body, headers={"X-MLscope-Token": "wrong"}), 401, "token")
    assert tags_of(shared, run_id) == before
    for route, body in requests:
        answer = http.post(f"/api/runs/{run_id}/{route}", json=body, headers={"Authorization": "Bearer s3cret"})
        assert answer.status_code == 200, answer.text
    assert tags_of(shared, run_id)[NOTE] == "x" and tags_of(shared, run_id)["k"] == "v"
    assert "owner" not in tags_of(shared, run_id)
    assert http.get(f"/api/runs/{run_id}").status_code == 200
    assert http.post("/api/markdown", json={"content": "*x*"}).json() == {"html": "<p><em>x</em></p>\n"}


def test_a_failing_store_is_a_one_line_error_and_nothing_changes(store: Store) -> None:
    run_id, http = new_run(store, owner="me"), api(store)
    with sqlite3.connect(store.root / "mlflow.db") as db:
        db.executescript("CREATE TRIGGER refuse_insert BEFORE INSERT ON tags BEGIN SELECT RAISE(ABORT, 'disk full'); "
                         "END; CREATE TRIGGER refuse_update BEFORE UPDATE ON tags BEGIN SELECT RAISE(ABORT, "
                         "'disk full'); END; CREATE TRIGGER refuse_delete BEFORE DELETE ON tags BEGIN SELECT "
                         "RAISE(ABORT, 'disk full'); END;")
    before = tags_of(store, run_id)
    for route, body in (("note", {"content": "x"}), ("tags", {"key": "owner", "value": "you"}),
                        ("tags/remove", {"key": "owner"})):
        message = assert_error(http.post(f"/api/runs/{run_id}/{route}", json=body), 503, None)
        assert message.startswith("MLflow: ") and "disk full" in message
    assert tags_of(store, run_id) == before


@pytest.mark.slow
def test_changes_are_what_an_mlflow_server_serves(tmp_path: Path) -> None:
    """mlscope pointed at a real `mlflow server`; the REST API MLflow's UI reads shows the changes."""
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server") as server:
        client = MlflowClient(server.url)
        run_id = client.create_run(client.create_experiment("notes")).info.run_id
        http = TestClient(create_app(Settings(tracking_uri=server.url, registry_uri=server.url, user="tester")))
        http.post(f"/api/runs/{run_id}/note", json={"content": MARKDOWN}).raise_for_status()
        http.post(f"/api/runs/{run_id}/tags", json={"key": "owner", "value": "me"}).raise_for_status()
        http.post(f"/api/runs/{run_id}/tags", json={"key": "gone", "value": "soon"}).raise_for_status()
        http.post(f"/api/runs/{run_id}/tags/remove", json={"key": "gone"}).raise_for_status()
        served = httpx.get(f"{server.url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()
        tags = {tag["key"]: tag["value"] for tag in served["run"]["data"]["tags"]}
        assert tags[NOTE] == MARKDOWN and tags["owner"] == "me" and "gone" not in tags
        # and back: a description MLflow's UI saves (the same set-tag call) shows in mlscope
        httpx.post(f"{server.url}/api/2.0/mlflow/runs/set-tag",
                   json={"run_id": run_id, "key": NOTE, "value": "*edited in MLflow*"}).raise_for_status()
        assert http.get(f"/api/runs/{run_id}").json()["note"]["html"] == "<p><em>edited in MLflow</em></p>\n"
