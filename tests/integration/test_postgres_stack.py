"""mlscope on a real MLflow stack: a PostgreSQL backend store behind a real `mlflow server` with proxied
artifacts (`--serve-artifacts`), reached the way users reach it.

- through the server (`MLFLOW_TRACKING_URI=http://127.0.0.1:PORT`): the CLI (train --promote, runs, explain,
  promote, history), the dashboard's JSON API (experiments, runs, compare + significance, run page and its
  artifact files, explanations and what-if, registry + promote) and the prediction API;
- directly on a second database (`MLFLOW_TRACKING_URI=postgresql://...`, local artifacts under
  MLSCOPE_ARTIFACT_ROOT): train --promote, dashboard, prediction API;
- mixed: the server's database read with a `postgresql://` URI. Its artifacts are `mlflow-artifacts:/` URIs
  that only the server can read: what needs no artifact works, everything else is a one-line error naming
  the fix (the server's http:// URI), never a traceback or a 500.

Every outcome is checked against the store itself: PostgreSQL's tables, MLflow's answers, and the artifact
files on disk. One fresh database per stack (dropped afterwards), trained once per module."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from psycopg import sql
from typer.testing import CliRunner

from mlscope.cli import app
from mlscope.config import Settings
from mlscope.serving.app import build_api
from mlscope.tracking import registry
from mlscope.tracking.client import allow_model_loading, bind_fluent_api
from mlscope.tracking.index import RunIndex
from mlscope.web.app import create_app
from tests import postgres
from tests.conftest import mlflow_state_kept
from tests.integration.test_serve import THIRD_CLASS_MAN
from tests.tracking_server import mlflow_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

MODEL = "titanic-survival"
RUN_NAMES = {"rf-baseline", "rf-tuned", "logistic-regression", "svm"}
FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
TEST_ROWS = 179
API_FIELDS = {"Pclass": "pclass", "Sex": "sex", "Age": "age", "SibSp": "sibsp", "Parch": "parch", "Fare": "fare",
              "Embarked": "embarked"}
WOMAN_FIRST_CLASS = {"Pclass": 1, "Sex": "female", "Age": 28.0, "SibSp": 0, "Parch": 0, "Fare": 100.0,
                     "Embarked": "S"}
FIX = "http://"  # what every mixed-case error must point the user to


# --- the stacks ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stack:
    """One trained PostgreSQL-backed store and how mlscope reaches it."""

    tracking_uri: str  # what mlscope is given: the server's http:// URL, or the database's postgresql:// URI
    database: str  # postgresql:// URI of the backend database (checks read it directly)
    artifacts: Path  # where the artifact files land on disk
    artifact_root: str | None  # MLSCOPE_ARTIFACT_ROOT (direct stack only)
    train_output: str

    @property
    def env(self) -> dict[str, str]:
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri, "MLFLOW_REGISTRY_URI": self.tracking_uri,
               "MLSCOPE_USER": "tester"}
        if self.artifact_root:
            env["MLSCOPE_ARTIFACT_ROOT"] = self.artifact_root
        return env

    def settings(self, **overrides: object) -> Settings:
        return Settings(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri,
                        artifact_root=self.artifact_root, user="tester", **overrides)

    def client(self) -> MlflowClient:
        """A client of the database itself, not of mlscope's path to it."""
        return MlflowClient(tracking_uri=self.database, registry_uri=self.database)

    def runs(self) -> dict[str, Run]:
        client = self.client()
        experiment = client.get_experiment_by_name("titanic")
        return {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}

    def local_artifact(self, run: Run, path: str) -> Path:
        """The file behind one of the run's artifacts, on disk."""
        parsed = urllib.parse.urlparse(run.info.artifact_uri)
        if parsed.scheme == "mlflow-artifacts":  # relative to the server's --artifacts-destination
            return self.artifacts / parsed.path.lstrip("/") / path
        assert parsed.scheme in ("", "file"), run.info.artifact_uri
        return Path(parsed.path) / path


def invoke(env: dict[str, str], *args: str) -> Any:
    """The real CLI in-process, as a user would run it from a shell."""
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def _count(database: str, table: str, where: str = "TRUE") -> int:
    with psycopg.connect(database) as conn:
        query = sql.SQL("SELECT count(*) FROM {} WHERE " + where).format(sql.Identifier(table))
        return conn.execute(query).fetchone()[0]


@pytest.fixture(scope="module")
def _kept_mlflow_state() -> Iterator[None]:
    """The module's stacks bind MLflow's process-wide state; it is put back when the module ends, so no
    later test meets a stopped server or a dropped database."""
    with mlflow_state_kept():
        yield


@contextmanager
def _database() -> Iterator[str]:
    with postgres.database_or_skip("mlscope_stack") as uri:
        yield postgres.plain(uri)


def _train(stack: Stack) -> Stack:
    result = invoke(stack.env, "train", "--promote")
    assert result.exit_code == 0, result.output
    return Stack(stack.tracking_uri, stack.database, stack.artifacts, stack.artifact_root, result.output)


@pytest.fixture(scope="module")
def served(_kept_mlflow_state: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A real `mlflow server` over a fresh PostgreSQL database, proxying artifacts; trained through it."""
    folder = tmp_path_factory.mktemp("pg-server")
    with _database() as database, mlflow_server(database, folder) as server:
        yield _train(Stack(server.url, database, folder / "artifacts", None, ""))


@pytest.fixture(scope="module")
def direct(_kept_mlflow_state: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second fresh database used directly (no server), artifacts in a local folder."""
    artifacts = tmp_path_factory.mktemp("pg-direct") / "artifacts"
    with _database() as database:
        yield _train(Stack(database, database, artifacts, str(artifacts), ""))


@pytest.fixture(scope="module")
def mixed(served: Stack) -> Stack:
    """The server's database, read with its postgresql:// URI instead of the server's URL."""
    return Stack(served.database, served.database, served.artifacts, None, served.train_output)


# --- checks shared by the stacks --------------------------------------------------------------------------

def best_by_roc_auc(stack: Stack) -> tuple[str, float]:
    runs = stack.runs()
    name = max(runs, key=lambda n: runs[n].data.metrics["roc_auc"])
    return name, runs[name].data.metrics["roc_auc"]


def version_of(stack: Stack, run_name: str) -> str:
    run_id = stack.runs()[run_name].info.run_id
    [version] = [v for v in stack.client().search_model_versions(f"name = '{MODEL}'") if v.run_id == run_id]
    return str(version.version)


def production(stack: Stack) -> str:
    return registry.aliases(stack.client(), MODEL)["production"]


def assert_trained_and_promoted(stack: Stack) -> None:
    """Four FINISHED runs with their metrics and artifact files, four READY versions, @staging and
    @production set by `train` on the best version, all of it in PostgreSQL's own tables."""
    runs = stack.runs()
    assert set(runs) == RUN_NAMES
    for name, run in runs.items():
        assert run.info.status == "FINISHED", (name, run.data.tags.get("mlscope.error"))
        metrics = run.data.metrics
        assert 0.79 <= metrics["accuracy"] <= 0.83 and 0.82 <= metrics["roc_auc"] <= 0.86, (name, metrics)
        assert len(metrics) > 40 and "cv_roc_auc_mean" in metrics and "sex_female_accuracy" in metrics
        assert run.data.params["test_rows"] == str(TEST_ROWS) and run.data.params["features"] == ",".join(FEATURES)
        for artifact in ("roc_curve.json", "predictions.csv", "confusion_matrix.png", "explanations/test.json"):
            assert stack.local_artifact(run, artifact).is_file(), (name, artifact)
        predictions = pd.read_csv(stack.local_artifact(run, "predictions.csv"))
        assert len(predictions) == TEST_ROWS
    assert (_count(stack.database, "runs", "status = 'FINISHED'"), _count(stack.database, "model_versions")) == (4, 4)
    assert _count(stack.database, "metrics") > 4 * 40

    versions = stack.client().search_model_versions(f"name = '{MODEL}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2", "3", "4"]
    assert {v.status for v in versions} == {"READY"}
    assert {v.run_id for v in versions} == {run.info.run_id for run in runs.values()}
    assert all(v.source.startswith("models:/m-") for v in versions)

    best, value = best_by_roc_auc(stack)
    assert best == "logistic-regression"
    events = [e for e in registry.alias_history(stack.client(), MODEL) if e.by == "tester (mlscope train)"]
    assert {(e.alias, e.action, e.version) for e in events} == {
        ("staging", "set", version_of(stack, best)), ("production", "set", version_of(stack, best))}
    assert f"Best: {best} (version {version_of(stack, best)}) by roc_auc = {value:.4f}" in stack.train_output
    assert "Alias production → version" in stack.train_output


def registered_probability(stack: Stack, version: str, passenger: dict[str, Any]) -> float:
    """P(survived) of `passenger` (API field names) by the registered model itself, loaded through MLflow
    from the same store the API reads."""
    import mlflow.sklearn

    settings = stack.settings()
    bind_fluent_api(settings)
    with allow_model_loading(settings):
        model = mlflow.sklearn.load_model(f"models:/{MODEL}/{version}")
    frame = pd.DataFrame([{raw: passenger.get(field) for raw, field in API_FIELDS.items()}])
    for column in ("Pclass", "Age", "SibSp", "Parch", "Fare"):
        frame[column] = frame[column].astype("float64")
    frame["Embarked"] = frame["Embarked"].astype(object).where(frame["Embarked"].notna(), np.nan)
    return float(model.predict_proba(frame)[0, 1])


def assert_compare_and_significance(http: TestClient, stack: Stack) -> None:
    runs = stack.runs()
    a, b = runs["svm"], runs["rf-baseline"]
    body = http.get("/api/compare", params={"runs": f"{a.info.run_id},{b.info.run_id}"})
    assert body.status_code == 200, body.text
    body = body.json()
    assert [r["name"] for r in body["runs"]] == ["svm", "rf-baseline"]
    assert {r["status"] for r in body["runs"]} == {"FINISHED"}
    metrics = {row["key"]: row for row in body["metrics"]}
    assert metrics["roc_auc"]["values"] == [a.data.metrics["roc_auc"], b.data.metrics["roc_auc"]]
    assert metrics["roc_auc"]["best"] == [a.info.run_id]  # svm 0.840 beats rf-baseline 0.830
    params = {row["key"]: row for row in body["params"]}
    assert params["model_type"]["values"] == ["svm", "random_forest"] and params["model_type"]["differs"]
    for run in (a, b):
        roc = body["roc"][run.info.run_id]
        assert "missing" not in roc, roc
        assert roc["auc"] == pytest.approx(run.data.metrics["roc_auc"], abs=1e-12) and len(roc["fpr"]) > 10
        stored = json.loads(stack.local_artifact(run, "roc_curve.json").read_text())
        assert roc["fpr"] == pytest.approx(stored["fpr"])
        confusion = body["confusion"][run.info.run_id]
        assert sum(map(sum, confusion["matrix"])) == TEST_ROWS
        assert set(body["fairness"][run.info.run_id]["columns"]) == {"Sex", "Pclass"}

    significance = http.get("/api/compare/significance",
                            params={"a": a.info.run_id, "b": b.info.run_id, "metric": "roc_auc"})
    assert significance.status_code == 200, significance.text
    significance = significance.json()
    assert (significance["run_a"]["name"], significance["run_b"]["name"]) == ("svm", "rf-baseline")
    tests = {test["key"]: test for test in significance["tests"]}
    assert set(tests) == {"nadeau_bengio", "mcnemar", "bootstrap_auc"}
    assert all(test["available"] for test in tests.values()), tests
    assert 0 <= tests["mcnemar"]["p_value"] <= 1 and tests["mcnemar"]["details"]["rows"] == TEST_ROWS
    bootstrap = tests["bootstrap_auc"]
    assert bootstrap["details"]["auc_a"] == pytest.approx(a.data.metrics["roc_auc"], abs=1e-9)
    assert bootstrap["details"]["auc_b"] == pytest.approx(b.data.metrics["roc_auc"], abs=1e-9)
    assert bootstrap["ci_low"] < bootstrap["estimate"] < bootstrap["ci_high"]
    assert significance["verdict"].startswith("svm") and significance["significant"] in (True, False)


def assert_run_page_and_artifacts(http: TestClient, stack: Stack) -> None:
    run = stack.runs()["logistic-regression"]
    run_id = run.info.run_id
    body = http.get(f"/api/runs/{run_id}")
    assert body.status_code == 200, body.text
    body = body.json()
    assert body["info"]["status"] == "FINISHED" and body["info"]["artifact_uri"] == run.info.artifact_uri
    assert body["metrics"]["roc_auc"] == run.data.metrics["roc_auc"] and body["params"] == run.data.params
    assert body["artifacts"]["error"] is None
    listed = {entry["path"]: entry for entry in body["artifacts"]["entries"]}
    for path in ("roc_curve.json", "predictions.csv", "confusion_matrix.png", "explanations/test.json"):
        assert listed[path]["file_size"] == stack.local_artifact(run, path).stat().st_size, path
    assert "sklearn" in body["model"]["flavors"] and body["model"]["note"] is None
    assert [column["name"] for column in body["signature"]["inputs"]] == FEATURES
    [version] = body["registry_versions"]
    assert (version["name"], version["version"]) == (MODEL, version_of(stack, "logistic-regression"))

    for path, media in (("roc_curve.json", "application/json"), ("confusion_matrix.png", "image/png"),
                        ("predictions.csv", "text/plain")):
        file = http.get(f"/api/runs/{run_id}/artifacts/{path}")
        assert file.status_code == 200, (path, file.text[:300])
        assert file.headers["content-type"].startswith(media)
        assert file.content == stack.local_artifact(run, path).read_bytes(), path
    missing = http.get(f"/api/runs/{run_id}/artifacts/no-such-file.json")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "artifact_path"


def assert_explain_view(http: TestClient, stack: Stack) -> None:
    runs = stack.runs()
    run_id = runs["rf-tuned"].info.run_id
    body = http.get(f"/api/runs/{run_id}/explanation")
    assert body.status_code == 200, body.text
    body = body.json()
    assert body["available"] is True and body["run_name"] == "rf-tuned" and body["experiment"] == "titanic"
    assert body["metadata"]["exact"] is True and body["metadata"]["rows"] == TEST_ROWS
    assert body["metadata"]["additivity_error"] <= 1e-6
    stored = json.loads(stack.local_artifact(runs["rf-tuned"], "explanations/test.json").read_text())
    assert stored["metadata"]["background_size"] == body["metadata"]["background_size"] == 100
    importance = {item["feature"]: item["mean_abs_shap"] for item in body["global"]}
    assert set(importance) == set(FEATURES) and max(importance, key=importance.get) == "Sex"

    what_if = http.post(f"/api/runs/{run_id}/explanation/what-if", json={"record": WOMAN_FIRST_CLASS})
    assert what_if.status_code == 200, what_if.text
    what_if = what_if.json()
    waterfall = what_if["waterfall"]
    total = waterfall["base_value"] + sum(c["shap"] for c in waterfall["contributions"])
    assert what_if["probability"] > 0.5 and total == pytest.approx(what_if["probability"], abs=1e-6)

    compared = http.get("/api/explanations/compare", params={"a": run_id, "b": runs["svm"].info.run_id})
    assert compared.status_code == 200, compared.text
    compared = compared.json()
    assert compared["shared_rows"] == TEST_ROWS and -1 <= compared["spearman"] <= 1
    assert set(compared["features"]) == set(FEATURES)


def assert_api_serves_production(stack: Stack) -> None:
    version = production(stack)
    with TestClient(build_api(stack.settings(retry_seconds=0.1))) as api:
        ready = api.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["model"] == {"name": MODEL, "version": version}
        model = api.get("/model").json()
        assert model["run_id"] == stack.client().get_model_version(MODEL, version).run_id
        answer = api.post("/predict", json=THIRD_CLASS_MAN)
        assert answer.status_code == 200, answer.text
        answer = answer.json()
        assert answer["survived"] == 0 and answer["model"] == {"name": MODEL, "version": version}
        assert answer["probability"] == pytest.approx(registered_probability(stack, version, THIRD_CLASS_MAN),
                                                      abs=1e-12)
        explained = api.post("/predict", params={"explain": "true"}, json=THIRD_CLASS_MAN).json()["explanation"]
        assert explained["base_value"] + sum(explained["contributions"].values()) == pytest.approx(
            answer["probability"], abs=1e-6)
        bad = api.post("/predict", json={**THIRD_CLASS_MAN, "sex": "other"})
        assert bad.status_code == 422
        error = bad.json()["error"]
        assert error["field"] == "sex" and "sex" in error["message"] and "\n" not in error["message"]


def one_line_error(result: Any, code: int, *needles: str) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0], result.output
    return lines[0]


# --- through the tracking server (http://) ---------------------------------------------------------------

def test_train_through_the_server_logs_registers_and_promotes(served: Stack) -> None:
    assert served.tracking_uri.startswith("http://127.0.0.1:")
    assert_trained_and_promoted(served)
    # Artifacts went through the server (proxied), so every run's artifact root is an mlflow-artifacts URI.
    assert all(run.info.artifact_uri.startswith("mlflow-artifacts:/") for run in served.runs().values())
    assert served.client().get_experiment_by_name("titanic").artifact_location.startswith("mlflow-artifacts:/")


def test_cli_runs_through_the_server(served: Stack) -> None:
    best, value = best_by_roc_auc(served)
    listing = invoke(served.env, "runs")
    assert listing.exit_code == 0, listing.output
    assert "4 run(s) of experiment 'titanic'" in listing.output
    assert f"★ best by roc_auc, {value:.4f}" in listing.output and best in listing.output
    assert "@production" in listing.output
    by_loss = invoke(served.env, "runs", "--metric", "log_loss")
    assert by_loss.exit_code == 0 and "lower is better" in by_loss.output


def test_cli_explain_through_the_server(served: Stack) -> None:
    runs = served.runs()
    run = runs["logistic-regression"]
    overview = invoke(served.env, "explain", run.info.run_id)
    assert overview.exit_code == 0, overview.output
    assert "mean |SHAP|" in overview.output and "Sex" in overview.output and "(cached artifact)" in overview.output

    row = invoke(served.env, "explain", run.info.run_id, "--row", "0")
    assert row.exit_code == 0 and "base value" in row.output, row.output

    passenger = '{"pclass": 1, "sex": "female", "age": 28, "sibsp": 0, "parch": 0, "fare": 100}'
    first = invoke(served.env, "explain", run.info.run_id, "--input", passenger)
    assert first.exit_code == 0, first.output
    assert "(cached artifact)" not in first.output
    assert float(first.output.split("P(class 1) = ")[1].split()[0]) > 0.5
    # the result was uploaded through the server's artifact proxy: it is on the server's disk now
    cached = list(served.local_artifact(run, "explanations").glob("custom-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["metadata"]["exact"] is True
    again = invoke(served.env, "explain", run.info.run_id, "--input", passenger)
    assert again.exit_code == 0 and "(cached artifact)" in again.output

    compared = invoke(served.env, "explain", run.info.run_id, "--compare", runs["svm"].info.run_id)
    assert compared.exit_code == 0, compared.output
    assert "Spearman" in compared.output and f"{TEST_ROWS} shared rows" in compared.output


def test_cli_promote_and_history_through_the_server(served: Stack) -> None:
    before = production(served)
    target = version_of(served, "svm")
    assert target != before
    audit_tags = "key LIKE 'mlscope.audit.production.%'"
    tags_before = _count(served.database, "model_version_tags", audit_tags)
    promoted = invoke(served.env, "promote", MODEL, target, "--alias", "production", "--reason", "pg drill")
    assert promoted.exit_code == 0, promoted.output
    assert f"was version {before}" in promoted.output
    assert production(served) == target  # read from PostgreSQL directly
    event = registry.alias_history(served.client(), MODEL)[-1]
    assert (event.alias, event.action, event.previous_version, event.version) == ("production", "move", before, target)
    assert (event.by, event.reason) == ("tester", "pg drill")
    assert _count(served.database, "model_version_tags", audit_tags) == tags_before + 1

    shown = invoke(served.env, "history", MODEL)
    assert shown.exit_code == 0, shown.output
    assert "pg drill" in shown.output and "mlscope train" in shown.output

    refused = invoke(served.env, "promote", MODEL, "99")
    one_line_error(refused, 1, "has no version 99")


def test_dashboard_lists_experiments_and_runs_through_the_server(served: Stack) -> None:
    http = TestClient(create_app(served.settings()))
    best, value = best_by_roc_auc(served)
    runs = served.runs()
    experiments = http.get("/api/experiments").json()["experiments"]
    [titanic] = [e for e in experiments if e["name"] == "titanic"]
    assert titanic["runs"] == 4 and titanic["best_value"] == value
    assert (titanic["best_run_id"], titanic["best_run_name"]) == (runs[best].info.run_id, best)

    listed = http.get("/api/runs", params={"experiment": "titanic"}).json()
    assert {r["name"] for r in listed["runs"]} == RUN_NAMES and {r["status"] for r in listed["runs"]} == {"FINISHED"}
    assert listed["best_run_id"] == runs[best].info.run_id
    for shown in listed["runs"]:
        assert shown["metrics"]["roc_auc"] == runs[shown["name"]].data.metrics["roc_auc"]
    page = http.get("/api/runs/page", params={"order_by": "metrics.log_loss ASC", "limit": 2}).json()
    assert page["total"] == 4 and len(page["runs"]) == 2
    losses = sorted(run.data.metrics["log_loss"] for run in runs.values())
    assert [r["metrics"]["log_loss"] for r in page["runs"]] == losses[:2]
    assert http.get("/experiments/titanic").status_code == 200


def test_dashboard_compare_and_significance_through_the_server(served: Stack) -> None:
    assert_compare_and_significance(TestClient(create_app(served.settings())), served)


def test_dashboard_run_page_and_artifacts_through_the_server(served: Stack) -> None:
    assert_run_page_and_artifacts(TestClient(create_app(served.settings())), served)


def test_dashboard_explain_view_through_the_server(served: Stack) -> None:
    assert_explain_view(TestClient(create_app(served.settings())), served)


def test_dashboard_registry_and_promote_through_the_server(served: Stack) -> None:
    http = TestClient(create_app(served.settings()))
    detail = http.get(f"/api/models/{MODEL}").json()
    assert [v["version"] for v in detail["versions"]] == ["4", "3", "2", "1"]
    assert detail["aliases"] == registry.aliases(served.client(), MODEL)
    by_version = {v["version"]: v for v in detail["versions"]}
    for name, run in served.runs().items():
        shown = by_version[version_of(served, name)]
        assert shown["run"]["run_id"] == run.info.run_id and shown["run"]["run_name"] == name
        assert shown["metrics"]["roc_auc"] == pytest.approx(run.data.metrics["roc_auc"], rel=1e-12)

    before = production(served)
    target = version_of(served, "rf-tuned")
    assert target != before
    moved = http.post(f"/api/models/{MODEL}/aliases",
                      json={"alias": "production", "version": target, "reason": "dashboard drill"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["from_version"], moved.json()["to_version"]) == (before, target)
    assert production(served) == target  # read from PostgreSQL directly
    latest = http.get(f"/api/models/{MODEL}/history").json()["events"][0]
    assert (latest["alias"], latest["from_version"], latest["to_version"], latest["reason"], latest["by"]) == (
        "production", before, target, "dashboard drill", "tester")


def test_prediction_api_through_the_server(served: Stack) -> None:
    assert_api_serves_production(served)


# --- directly on PostgreSQL (postgresql://, local artifacts) ---------------------------------------------

def test_train_directly_on_postgres_logs_registers_and_promotes(direct: Stack) -> None:
    assert direct.tracking_uri.startswith("postgresql://")
    assert_trained_and_promoted(direct)
    for run in direct.runs().values():  # artifacts in MLSCOPE_ARTIFACT_ROOT/<experiment>
        assert Path(urllib.parse.urlparse(run.info.artifact_uri).path).is_relative_to(direct.artifacts / "titanic")
    index = RunIndex(direct.tracking_uri)  # the dashboard reads runs with read-only SQL on PostgreSQL
    try:
        assert index.backend == "sql", index.fallback_reason
    finally:
        index.close()


def test_cli_directly_on_postgres(direct: Stack) -> None:
    best, value = best_by_roc_auc(direct)
    listing = invoke(direct.env, "runs")
    assert listing.exit_code == 0 and f"★ best by roc_auc, {value:.4f}" in listing.output, listing.output
    explained = invoke(direct.env, "explain", direct.runs()[best].info.run_id, "--row", "3")
    assert explained.exit_code == 0 and "base value" in explained.output, explained.output


def test_dashboard_directly_on_postgres(direct: Stack) -> None:
    http = TestClient(create_app(direct.settings()))
    assert_compare_and_significance(http, direct)
    assert_run_page_and_artifacts(http, direct)
    assert_explain_view(http, direct)


def test_prediction_api_directly_on_postgres(direct: Stack) -> None:
    assert_api_serves_production(direct)


# --- mixed: the server's database read with postgresql:// ------------------------------------------------

def test_cli_on_the_servers_database_reads_runs_and_names_the_fix_for_artifacts(mixed: Stack) -> None:
    runs = mixed.runs()
    listing = invoke(mixed.env, "runs")  # params and metrics live in the database: no server needed
    assert listing.exit_code == 0, listing.output
    assert "4 run(s) of experiment 'titanic'" in listing.output

    run_id = runs["svm"].info.run_id
    for args in ([run_id], [run_id, "--row", "0"], [run_id, "--compare", runs["rf-tuned"].info.run_id]):
        line = one_line_error(invoke(mixed.env, "explain", *args), 2, "mlflow-artifacts", "MLFLOW_TRACKING_URI", FIX)
        assert "postgresql" in line and mixed.database not in line  # names the scheme, never the URI


def test_dashboard_on_the_servers_database_names_the_fix_for_artifacts(mixed: Stack) -> None:
    http = TestClient(create_app(mixed.settings()), raise_server_exceptions=False)
    runs = mixed.runs()
    a, b = runs["svm"].info.run_id, runs["rf-baseline"].info.run_id

    # what lives in the database works
    [titanic] = [e for e in http.get("/api/experiments").json()["experiments"] if e["name"] == "titanic"]
    assert titanic["runs"] == 4 and titanic["best_run_name"] == "logistic-regression"
    assert len(http.get("/api/runs").json()["runs"]) == 4
    detail = http.get(f"/api/runs/{a}")
    assert detail.status_code == 200, detail.text
    detail = detail.json()  # the run page shows params/metrics/tags and says why the artifacts are not listed
    assert detail["metrics"]["roc_auc"] == runs["svm"].data.metrics["roc_auc"] and detail["params"]
    assert detail["artifacts"]["entries"] == [] and FIX in detail["artifacts"]["error"]
    assert "\n" not in detail["artifacts"]["error"]
    assert http.get(f"/api/models/{MODEL}").status_code == 200
    compared = http.get("/api/compare", params={"runs": f"{a},{b}"})
    assert compared.status_code == 200, compared.text
    compared = compared.json()
    assert {row["key"] for row in compared["metrics"]} >= {"roc_auc", "accuracy"}
    for run_id in (a, b):
        for part in ("roc", "confusion", "fairness"):
            reason = compared[part][run_id]["missing"]
            assert "mlflow-artifacts" in reason and FIX in reason and "\\n" not in reason, reason

    # what needs artifacts is a 503 with one line that names the fix, never a 500
    needs_server = [("GET", f"/api/runs/{a}/artifacts/roc_curve.json", None),
                    ("GET", f"/api/runs/{a}/explanation", None),
                    ("POST", f"/api/runs/{a}/explanation/what-if", {"record": WOMAN_FIRST_CLASS}),
                    ("GET", f"/api/explanations/compare?a={a}&b={b}", None),
                    ("GET", f"/api/compare/significance?a={a}&b={b}&metric=roc_auc", None)]
    for method, url, body in needs_server:
        answer = http.request(method, url, json=body)
        assert answer.status_code == 503, (url, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "needs_tracking_server", (url, error)
        assert "mlflow-artifacts" in error["message"] and FIX in error["message"] and "\n" not in error["message"]
    for page in (f"/runs/{a}", f"/runs/{a}/explain", f"/experiments/titanic/compare?runs={a},{b}"):
        assert http.get(page).status_code == 200, page  # the HTML shells; their data calls are checked above


def test_prediction_api_on_the_servers_database_is_not_ready_and_says_why(mixed: Stack) -> None:
    with TestClient(build_api(mixed.settings(retry_seconds=0.1)), raise_server_exceptions=False) as api:
        assert api.get("/health").status_code == 200
        for answer in (api.get("/ready"), api.post("/predict", json=THIRD_CLASS_MAN)):
            assert answer.status_code == 503, answer.text
            error = answer.json()["error"]
            assert error["code"] == "not_ready" and "\n" not in error["message"]
            assert f"cannot load version {production(mixed)} of '{MODEL}'" in error["message"]
            assert "mlflow-artifacts" in error["message"] and FIX in error["message"]
