"""Registry versions linked to their runs the same way everywhere (mlscope.tracking.version_links), on a real
store holding every way MLflow 3 and its predecessors record the link: a classic `runs:/` registration, MLflow 3's
`register_model("models:/m-<id>")`, a model logged outside any run, a version registered from a logged model's
storage location with no run id (MLflow 3.0-3.5's UI), MLflow 2 style `runs:/` and run-artifact sources with no
run id, and a copy of another version. The runs view, `/api/runs`, `mlscope runs`, the run page, the registry
views, the explain link, the prediction API's loader and the best-version rule must all agree; also through a
real `mlflow server` over HTTP, and in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from mlscope.cli import app as cli
from mlscope.config import Settings
from mlscope.serving.loading import load_version
from mlscope.tracking import registry
from mlscope.tracking.client import bind_fluent_api
from mlscope.training.experiments import SelectionRule
from mlscope.web.app import create_app
from tests.conftest import Store, copy_of, mlflow_state_kept
from tests.live import live_app, screenshot
from tests.tracking_server import mlflow_server

pytestmark = pytest.mark.slow

MODEL = "titanic-survival"  # the configured model name (Settings' default)
FOREIGN = "churn"  # a registered model of someone else's: its badges carry its name
EXPERIMENT = "mlflow3-registry"
PIP = ["scikit-learn"]  # no requirement inference (seconds per model)


@dataclass(frozen=True)
class Linked:
    store: Store
    runs: dict[str, str]  # role -> run id
    orphan_model: str  # the model id logged outside any run


def _model() -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    return LogisticRegression().fit(frame, (frame["a"] > 0).astype(int)), frame


def _build(store: Store) -> Linked:
    client = store.client()
    model, frame = _model()
    bind_fluent_api(store.settings())
    experiment_id = store.experiment(EXPERIMENT)
    mlflow.set_experiment(experiment_id=experiment_id)
    runs: dict[str, str] = {}

    def run(role: str, roc_auc: float) -> Any:
        started = mlflow.start_run(run_name=role)
        mlflow.log_metric("roc_auc", roc_auc)
        runs[role] = started.info.run_id
        return started

    # (a) the classic way: a run's model registered through runs:/<run>/model, under the configured name
    with run("classic", 0.70):
        mlflow.sklearn.log_model(model, name="model", input_example=frame.head(3), pip_requirements=PIP)
    mlflow.register_model(f"runs:/{runs['classic']}/model", MODEL)
    client.set_registered_model_alias(MODEL, "production", "1")
    # (b) MLflow 3: a LoggedModel inside a run, registered by its models:/m-<id> URI, under another name
    with run("mlflow3", 0.75):
        logged = mlflow.sklearn.log_model(model, name="clf", input_example=frame.head(3), pip_requirements=PIP)
    mlflow.register_model(logged.model_uri, FOREIGN)  # v1
    client.set_registered_model_alias(FOREIGN, "champion", "1")
    # (c) a LoggedModel logged outside any run: no source run at all
    orphan = mlflow.sklearn.log_model(model, name="orphan", input_example=frame.head(3), pip_requirements=PIP)
    assert client.get_logged_model(orphan.model_id).source_run_id is None
    mlflow.register_model(orphan.model_uri, FOREIGN)  # v2
    # what MLflow 3.0-3.5's UI registered: the logged model's storage location, no run id
    with run("ui", 0.90):
        shown = mlflow.sklearn.log_model(model, name="model", input_example=frame.head(3), pip_requirements=PIP)
    client.create_model_version(FOREIGN, source=client.get_logged_model(shown.model_id).artifact_location)  # v3
    # MLflow 2 style sources without a run id: runs:/ and the run's artifact URI
    with run("mlflow2", 0.80) as active:
        artifact_uri = active.info.artifact_uri
    client.create_model_version(FOREIGN, source=f"runs:/{runs['mlflow2']}/model")  # v4
    client.create_model_version(FOREIGN, source=f"{artifact_uri}/model")  # v5
    # a copy of v1 (a registry source; a local store records no run id for it)
    mlflow.register_model(f"models:/{FOREIGN}/1", FOREIGN)  # v6
    with run("unregistered", 0.60):
        pass
    return Linked(store, runs, orphan.model_id)


EXPECTED_BADGES = {
    "classic": "v1 @production",
    "mlflow3": f"{FOREIGN} v1 @champion, {FOREIGN} v6",
    "ui": f"{FOREIGN} v3",
    "mlflow2": f"{FOREIGN} v4, {FOREIGN} v5",
    "unregistered": None,
}
# role -> the run page's versions: (model, version, aliases, linked_by)
RUN_PAGE_VERSIONS = {
    "classic": [(MODEL, "1", ["production"], "run_id")],
    "mlflow3": [(FOREIGN, "1", ["champion"], "run_id"), (FOREIGN, "6", [], "copied_version")],
    "ui": [(FOREIGN, "3", [], "logged_model")],
    "mlflow2": [(FOREIGN, "4", [], "source_uri"), (FOREIGN, "5", [], "source_uri")],
    "unregistered": [],
}
# version of FOREIGN -> (role of its run, how it is linked)
EXPECTED_SOURCES = {
    "1": ("mlflow3", "run_id"), "2": (None, None), "3": ("ui", "logged_model"), "4": ("mlflow2", "source_uri"),
    "5": ("mlflow2", "source_uri"), "6": ("mlflow3", "copied_version"),
}


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Linked]:
    with mlflow_state_kept():
        yield _build(Store(tmp_path_factory.mktemp("version-links")))


def test_mlflow_records_what_this_store_is_made_of(linked: Linked) -> None:
    """The premises, as MLflow 3.17 writes them: a models:/m-<id> registration gets its run id from the logged
    model; the versions registered without one have none."""
    client = linked.store.client()
    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{FOREIGN}'")}
    assert versions["1"].source.startswith("models:/m-") and versions["1"].run_id == linked.runs["mlflow3"]
    assert versions["2"].source == f"models:/{linked.orphan_model}" and not versions["2"].run_id
    assert all(not versions[number].run_id for number in ("3", "4", "5", "6"))
    assert "/models/m-" in versions["3"].source and versions["6"].source == f"models:/{FOREIGN}/1"


def _badges_by_role(linked: Linked, runs: list[dict[str, Any]]) -> dict[str, str | None]:
    role = {run_id: name for name, run_id in linked.runs.items()}
    return {role[run["run_id"]]: run["registered"] for run in runs}


def _check_runs_view(linked: Linked, http: TestClient, badges: dict[str, str | None]) -> None:
    page = http.get("/api/runs/page", params={"experiment": EXPERIMENT, "limit": 100})
    assert page.status_code == 200, page.text
    assert _badges_by_role(linked, page.json()["runs"]) == badges
    listing = http.get("/api/runs", params={"experiment": EXPERIMENT}).json()
    assert _badges_by_role(linked, listing["runs"]) == badges


def _check_run_pages(linked: Linked, http: TestClient) -> None:
    for role, expected in RUN_PAGE_VERSIONS.items():
        body = http.get(f"/api/runs/{linked.runs[role]}").json()
        assert body["registry_error"] is None
        assert [(v["name"], v["version"], v["aliases"], v.get("linked_by")) for v in body["registry_versions"]] \
            == expected, role


def _check_registry_views(linked: Linked, http: TestClient) -> None:
    versions = {v["version"]: v["run"] for v in http.get(f"/api/models/{FOREIGN}").json()["versions"]}
    for number, (role, linked_by) in EXPECTED_SOURCES.items():
        run = versions[number]
        assert run["run_id"] == (linked.runs[role] if role else None), number
        assert run.get("linked_by") == linked_by and run["state"] == ("active" if role else "none"), number
        assert run["link"] == (f"/runs/{linked.runs[role]}" if role else None)
        assert run["run_name"] == role or role is None
    [classic] = http.get(f"/api/models/{MODEL}").json()["versions"]
    assert classic["run"]["run_id"] == linked.runs["classic"] and classic["aliases"] == ["production"]


def _check_explain_links(linked: Linked, http: TestClient) -> None:
    explained = http.get(f"/models/{FOREIGN}/versions/3/explain", follow_redirects=False)
    assert explained.status_code == 307
    assert explained.headers["location"].startswith(f"/runs/{linked.runs['ui']}/explain?")
    unlinked = http.get(f"/models/{FOREIGN}/versions/2/explain", follow_redirects=False)
    assert unlinked.status_code == 404 and unlinked.json()["error"]["field"] == "version"


@pytest.fixture(scope="module")
def http(linked: Linked) -> TestClient:
    return TestClient(create_app(linked.store.settings(experiment_name=EXPERIMENT)))


def test_runs_view_and_api_badge_every_models_versions(linked: Linked, http: TestClient) -> None:
    _check_runs_view(linked, http, EXPECTED_BADGES)


def test_run_page_lists_the_versions_linked_to_the_run(linked: Linked, http: TestClient) -> None:
    _check_run_pages(linked, http)


def test_registry_view_names_each_versions_source_run(linked: Linked, http: TestClient) -> None:
    _check_registry_views(linked, http)


def test_version_explain_link_follows_the_link_or_says_there_is_no_run(linked: Linked, http: TestClient) -> None:
    _check_explain_links(linked, http)


def test_links_survive_one_item_per_registry_page(linked: Linked, http: TestClient,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from mlscope.tracking import version_links  # imported here so this file also runs against older code

    monkeypatch.setattr(version_links, "VERSIONS_PAGE", 2)
    monkeypatch.setattr(version_links, "MODELS_PAGE", 1)
    monkeypatch.setattr(version_links, "MODEL_IDS_PER_QUERY", 1)
    _check_runs_view(linked, http, EXPECTED_BADGES)
    _check_run_pages(linked, http)


def _cli_rows(env: dict[str, str]) -> dict[str, str]:
    result = CliRunner().invoke(cli, ["runs", "--experiment", EXPERIMENT], env={**env, "COLUMNS": "250"},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {line.split("│")[2].strip(): line for line in result.output.splitlines() if line.count("│") > 5}


def test_mlscope_runs_shows_the_same_badges(linked: Linked) -> None:
    rows = _cli_rows(linked.store.env)
    for role, badge in EXPECTED_BADGES.items():
        cells = [cell.strip() for cell in rows[role].split("│")]
        assert cells[-3] == (badge or ""), rows[role]


def test_serving_and_best_version_read_the_linked_run(linked: Linked) -> None:
    client = linked.store.client()
    loaded = load_version(linked.store.settings(), client, FOREIGN, "live", "3")
    assert loaded.run_id == linked.runs["ui"] and loaded.metrics == {"roc_auc": 0.90}
    assert linked.runs["ui"] in (loaded.explain_unavailable or "")
    best, value = registry.best_version(client, FOREIGN, SelectionRule(metric="roc_auc", tie_breaker=""))
    assert (str(best.version), value) == ("3", 0.90)


def test_an_unreadable_registry_leaves_the_column_empty_and_says_so_on_the_run_page(
        linked: Linked, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = linked.store.settings(experiment_name=EXPERIMENT).model_copy(update={"registry_uri": "http://127.0.0.1:9"})
    http = TestClient(create_app(settings))
    page = http.get("/api/runs/page", params={"experiment": EXPERIMENT})
    assert page.status_code == 200 and [run["registered"] for run in page.json()["runs"]] == [None] * 5
    body = http.get(f"/api/runs/{linked.runs['classic']}").json()
    assert body["registry_versions"] == [] and body["registry_error"].startswith("cannot read the model registry")


def test_through_a_tracking_server(linked: Linked, tmp_path: Path) -> None:
    """The same answers when everything goes through `mlflow server`, and an MLflow 3 registration made over
    HTTP joins them."""
    store = copy_of(linked.store, tmp_path / "served")
    with mlflow_state_kept(), mlflow_server(store.uri, tmp_path / "server") as server:
        settings = Settings(tracking_uri=server.url, registry_uri=server.url, experiment_name=EXPERIMENT,
                            user="tester")
        client = MlflowClient(server.url, server.url)
        assert not client.get_model_version(FOREIGN, "2").run_id
        bind_fluent_api(settings)
        mlflow.set_experiment(EXPERIMENT)
        model, frame = _model()
        with mlflow.start_run(run_name="over-http") as active:
            mlflow.log_metric("roc_auc", 0.5)
            logged = mlflow.sklearn.log_model(model, name="clf", pip_requirements=PIP)
        over_http = mlflow.register_model(logged.model_uri, FOREIGN)
        assert str(over_http.version) == "7" and over_http.run_id == active.info.run_id

        served = Linked(store, {**linked.runs, "over-http": active.info.run_id}, linked.orphan_model)
        badges = {**EXPECTED_BADGES, "over-http": f"{FOREIGN} v7"}
        http = TestClient(create_app(settings))
        _check_runs_view(served, http, badges)
        _check_run_pages(served, http)
        _check_registry_views(served, http)
        _check_explain_links(served, http)
        rows = _cli_rows({"MLFLOW_TRACKING_URI": server.url, "MLFLOW_REGISTRY_URI": server.url, "MLSCOPE_USER": "t"})
        for role, badge in badges.items():
            assert [cell.strip() for cell in rows[role].split("│")][-3] == (badge or ""), rows[role]


@pytest.mark.browser
def test_runs_view_shows_the_badge_of_a_version_registered_from_a_logged_model(linked: Linked, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        with live_app(create_app(linked.store.settings(experiment_name=EXPERIMENT))) as url:
            page.goto(f"{url}/experiments/{EXPERIMENT}")
            row = page.wait_for_selector(f"[data-rows] .row[data-run-id='{linked.runs['mlflow3']}']")
            assert row.query_selector(".badge").inner_text() == EXPECTED_BADGES["mlflow3"]
            ui_row = page.locator(f"[data-rows] .row[data-run-id='{linked.runs['ui']}'] .badge")
            assert ui_row.inner_text() == EXPECTED_BADGES["ui"]
            orphanless = page.locator(f"[data-rows] .row[data-run-id='{linked.runs['unregistered']}'] .badge")
            assert orphanless.count() == 0
            screenshot(page, "runs-registered-from-logged-models")
            page.goto(f"{url}/runs/{linked.runs['ui']}")
            page.wait_for_selector(f"[data-versions] tr[data-version='{FOREIGN}/3']")
        assert requests and all(request.startswith(url) for request in requests), requests
    finally:
        context.close()
