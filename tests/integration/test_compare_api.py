"""The compare API: one bundle of 2..50 runs, checked against MlflowClient, the runs' artifacts and
sklearn's metrics recomputed from predictions.csv; runs without artifacts; the error shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from sklearn.metrics import confusion_matrix, roc_auc_score

from mlscope.tracking.comparison import ArtifactCache, compare_runs, parse_run_ids
from mlscope.tracking.index import RunIndex
from mlscope.web.app import create_app
from tests.conftest import Store, copy_of

pytestmark = pytest.mark.slow
HEADLINE = ["roc_auc", "accuracy", "precision", "recall", "f1", "log_loss"]  # the binary task's, its headline first


@dataclass(frozen=True)
class Mixed:
    """A copy of the trained store plus runs that mlscope did not make."""

    store: Store
    trained: dict[str, str]  # run name -> id
    plain: str  # FINISHED, params + metrics (one NaN), no artifacts at all
    running: str  # RUNNING, no artifacts
    broken: str  # FINISHED, a roc_curve.json of the wrong shape, a classification report that is not JSON


@pytest.fixture(scope="module")
def http(trained) -> TestClient:
    store, _ = trained
    return TestClient(create_app(store.settings()))


@pytest.fixture(scope="module")
def runs(trained) -> dict[str, str]:
    store, _ = trained
    client = store.client()
    experiment = client.get_experiment_by_name("titanic").experiment_id
    return {run.info.run_name: run.info.run_id for run in client.search_runs([experiment])}


@pytest.fixture(scope="module")
def mixed(trained, runs: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Mixed:
    store = copy_of(trained[0], tmp_path_factory.mktemp("compare-mixed"))
    client = store.client()
    experiment = client.create_experiment("plain-mlflow", artifact_location=str(store.root / "plain-artifacts"))
    plain = client.create_run(experiment, run_name="plain").info.run_id
    client.log_batch(plain, metrics=[Metric("accuracy", 0.5, 0, 0), Metric("log_loss", 0.1, 0, 0),
                                     Metric("roc_auc", float("nan"), 0, 0)],
                     params=[Param("alpha", "0.5"), Param("model_type", "ridge")])
    client.set_terminated(plain)
    running = client.create_run(experiment, run_name="still-running").info.run_id
    client.log_metric(running, "accuracy", 0.6)
    broken = client.create_run(experiment, run_name="broken").info.run_id
    files = store.root / "broken-files"
    files.mkdir()
    (files / "roc_curve.json").write_text(json.dumps({"fpr": [0.0, 1.0], "auc": 0.5}))
    (files / "classification_report.json").write_text("{not json")
    client.log_artifacts(broken, str(files))
    client.set_terminated(broken)
    return Mixed(store=store, trained=runs, plain=plain, running=running, broken=broken)


def compare(http: TestClient, *run_ids: str) -> dict[str, Any]:
    response = http.get("/api/compare", params={"runs": ",".join(run_ids)})
    assert response.status_code == 200, response.text
    return response.json()


def artifact_json(client: MlflowClient, run_id: str, name: str, folder: Path) -> Any:
    return json.loads(Path(client.download_artifacts(run_id, name, str(folder))).read_text())


def test_bundle_equals_mlflow_and_the_artifacts(http: TestClient, trained, runs: dict[str, str],
                                                tmp_path: Path) -> None:
    store, _ = trained
    client = store.client()
    order = ["svm", "rf-baseline", "logistic-regression", "rf-tuned"]
    body = compare(http, *(runs[name] for name in order))
    assert [run["name"] for run in body["runs"]] == order
    mlflow_runs = [client.get_run(runs[name]) for name in order]
    for shown, run in zip(body["runs"], mlflow_runs, strict=True):
        assert shown["run_id"] == run.info.run_id and shown["status"] == run.info.status == "FINISHED"
        assert (shown["start_time"], shown["end_time"]) == (run.info.start_time, run.info.end_time)
        assert shown["model_type"] == run.data.params["model_type"]
        assert shown["link"] == f"/runs/{run.info.run_id}"
    params = {row["key"]: row["values"] for row in body["params"]}
    assert set(params) == set().union(*(run.data.params for run in mlflow_runs))
    for i, run in enumerate(mlflow_runs):
        assert {key: values[i] for key, values in params.items() if values[i] is not None} == run.data.params
    metrics = {row["key"]: row["values"] for row in body["metrics"]}
    assert set(metrics) == set().union(*(run.data.metrics for run in mlflow_runs))
    for i, run in enumerate(mlflow_runs):
        assert {key: values[i] for key, values in metrics.items() if values[i] is not None} == run.data.metrics
    assert body["headline"] == HEADLINE

    for name, run in zip(order, mlflow_runs, strict=True):
        folder = tmp_path / name
        roc = artifact_json(client, run.info.run_id, "roc_curve.json", folder)
        shown_roc = body["roc"][run.info.run_id]
        assert (shown_roc["fpr"], shown_roc["tpr"], shown_roc["auc"]) == (roc["fpr"], roc["tpr"], roc["auc"])
        report = artifact_json(client, run.info.run_id, "classification_report.json", folder)
        assert body["confusion"][run.info.run_id] == {"labels": ["Did not survive", "Survived"],
                                                     "matrix": report["confusion_matrix"]}
        fairness = artifact_json(client, run.info.run_id, "fairness.json", folder)
        differences = {column: {key: value for key, value in slices.items() if key.endswith("_difference")}
                       for column, slices in fairness.items()}
        assert differences["Sex"].keys() == {"demographic_parity_difference", "equalized_odds_difference"}
        assert body["fairness"][run.info.run_id] == {"columns": {
            column: {**slices, "differences": differences[column]} for column, slices in fairness.items()}}
        # the charts show what sklearn computes from the run's own predictions
        predictions = pd.read_csv(client.download_artifacts(run.info.run_id, "predictions.csv", str(folder)))
        assert shown_roc["auc"] == pytest.approx(roc_auc_score(predictions.y_true, predictions.probability), abs=1e-12)
        assert shown_roc["auc"] == pytest.approx(run.data.metrics["roc_auc"], abs=1e-12)
        assert body["confusion"][run.info.run_id]["matrix"] == confusion_matrix(
            predictions.y_true, predictions.y_pred, labels=[0, 1]).tolist()


def test_differs_flags_and_best_run_per_metric(http: TestClient, trained, runs: dict[str, str]) -> None:
    store, _ = trained
    client = store.client()
    order = sorted(runs)
    body = compare(http, *(runs[name] for name in order))
    mlflow_runs = [client.get_run(runs[name]) for name in order]
    for row in body["params"]:
        assert row["differs"] == (len({run.data.params.get(row["key"]) for run in mlflow_runs}) > 1), row["key"]
    differing = {row["key"] for row in body["params"] if row["differs"]}
    assert {"model_type", "n_estimators"} <= differing and not {"dataset", "split_seed"} & differing
    for row in body["metrics"]:
        values = {run.info.run_id: run.data.metrics[row["key"]] for run in mlflow_runs
                  if row["key"] in run.data.metrics}
        lower = "loss" in row["key"]  # the only lower-is-better names mlscope logs
        target = (min if lower else max)(values.values())
        assert row["direction"] == ("min" if lower else "max"), row["key"]
        assert set(row["best"]) == {run_id for run_id, value in values.items() if value == target}, row["key"]
    by_key = {row["key"]: row for row in body["metrics"]}
    loss = {run.info.run_id: run.data.metrics["log_loss"] for run in mlflow_runs}
    assert by_key["log_loss"]["best"] == [min(loss, key=loss.get)]
    assert by_key["log_loss"]["best"] != [max(loss, key=loss.get)]
    auc = {run.info.run_id: run.data.metrics["roc_auc"] for run in mlflow_runs}
    assert by_key["roc_auc"]["best"] == [max(auc, key=auc.get)]


def test_runs_without_artifacts_still_compare(mixed: Mixed) -> None:
    http = TestClient(create_app(mixed.store.settings()))
    svm = mixed.trained["svm"]
    body = compare(http, svm, mixed.plain, mixed.running)
    assert [run["name"] for run in body["runs"]] == ["svm", "plain", "still-running"]
    assert [run["status"] for run in body["runs"]] == ["FINISHED", "FINISHED", "RUNNING"]
    params = {row["key"]: row for row in body["params"]}
    assert params["alpha"] == {"key": "alpha", "values": [None, "0.5", None], "differs": True}
    assert params["model_type"]["values"] == ["svm", "ridge", None]
    metrics = {row["key"]: row for row in body["metrics"]}
    assert metrics["roc_auc"]["values"][1:] == [None, None]  # NaN and missing are null
    assert metrics["roc_auc"]["best"] == [svm]
    assert metrics["log_loss"]["best"] == [mixed.plain]  # 0.1 is lower than any trained run's
    assert metrics["accuracy"]["values"][1:] == [0.5, 0.6]
    assert body["roc"][svm]["auc"] > 0.5
    for run_id, name in ((mixed.plain, "plain"), (mixed.running, "still-running")):
        assert body["roc"][run_id] == {"missing": f"run '{name}' has no roc_curve.json artifact"}
        assert body["confusion"][run_id] == {"missing": f"run '{name}' has no classification_report.json artifact"}
        assert body["fairness"][run_id] == {"missing": f"run '{name}' has no fairness.json artifact"}
    cache = http.app.state.web.services["compare"]
    assert svm in cache and mixed.plain in cache and mixed.running not in cache  # RUNNING runs can still change


def test_unreadable_artifacts_say_why(mixed: Mixed) -> None:
    http = TestClient(create_app(mixed.store.settings()))
    body = compare(http, mixed.broken, mixed.trained["rf-tuned"])
    assert body["roc"][mixed.broken]["missing"].startswith("roc_curve.json of run 'broken' has an unexpected shape")
    assert "tpr" in body["roc"][mixed.broken]["missing"]
    assert body["confusion"][mixed.broken]["missing"].startswith(
        "classification_report.json of run 'broken' is not valid JSON")
    assert body["fairness"][mixed.broken] == {"missing": "run 'broken' has no fairness.json artifact"}


class CountingRepository:
    """A run's artifact repository that records listings and downloads."""

    def __init__(self, repo: Any, run_id: str, listed: list[str], downloaded: list[tuple[str, str]]) -> None:
        self.repo, self.run_id, self.listed, self.downloaded = repo, run_id, listed, downloaded

    def list_artifacts(self, path: str | None = None) -> Any:
        self.listed.append(self.run_id)
        return self.repo.list_artifacts(path)

    def download_artifacts(self, path: str, dst_path: str | None = None) -> str:
        self.downloaded.append((self.run_id, path))
        return self.repo.download_artifacts(path, dst_path=dst_path)


def test_finished_runs_artifacts_are_read_once(mixed: Mixed, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlscope.tracking import comparison

    client = mixed.store.client()
    listed: list[str] = []
    downloaded: list[tuple[str, str]] = []
    by_uri = {client.get_run(run_id).info.artifact_uri: run_id for run_id in mixed.trained.values()}
    by_uri.update({client.get_run(r).info.artifact_uri: r for r in (mixed.plain, mixed.running)})
    real = comparison.run_repository
    monkeypatch.setattr(comparison, "run_repository", lambda c, uri: CountingRepository(
        real(c, uri), by_uri[uri], listed, downloaded))
    cache = ArtifactCache()
    ids = [mixed.trained["svm"], mixed.trained["rf-tuned"], mixed.plain, mixed.running]
    with RunIndex(mixed.store.uri) as index:
        first = compare_runs(index, client, cache, ids)
        assert sorted(listed) == sorted(ids)
        # only the files that exist are fetched, one download each
        assert sorted(downloaded) == sorted((run_id, name) for run_id in ids[:2] for name in
                                            ("classification_report.json", "fairness.json", "roc_curve.json"))
        listed.clear()
        downloaded.clear()
        second = compare_runs(index, client, cache, ids)
    assert listed == [mixed.running] and downloaded == []
    assert second == first


def test_many_runs_at_once(mixed: Mixed, runs: dict[str, str]) -> None:
    client = mixed.store.client()
    experiment = client.get_experiment_by_name("plain-mlflow").experiment_id
    extra = []
    for number in range(44):
        run_id = client.create_run(experiment, run_name=f"bulk-{number}").info.run_id
        client.log_metric(run_id, "accuracy", number / 100)
        client.set_terminated(run_id)
        extra.append(run_id)
    ids = [*runs.values(), mixed.plain, mixed.broken, *extra]
    assert len(ids) == 50
    http = TestClient(create_app(mixed.store.settings()))
    body = compare(http, *ids)
    assert [run["run_id"] for run in body["runs"]] == ids
    accuracy = next(row for row in body["metrics"] if row["key"] == "accuracy")
    best = max(client.get_run(run_id).data.metrics["accuracy"] for run_id in ids[:4])
    assert accuracy["best"] == [run_id for run_id in ids[:4]
                                if client.get_run(run_id).data.metrics["accuracy"] == best]
    too_many = http.get("/api/compare", params={"runs": ",".join([*ids, mixed.running])})
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "runs"
    assert "at most 50" in too_many.json()["error"]["message"]


@pytest.mark.parametrize(("query", "status", "words"), [
    ({}, 422, "runs: Field required"),
    ({"runs": ""}, 422, "at least 2 runs"),
    ({"runs": "RUN"}, 422, "at least 2 runs to compare, got 1"),
    ({"runs": "RUN,,  "}, 422, "at least 2 runs to compare, got 1"),
    ({"runs": "RUN,RUN"}, 422, "more than once"),
    ({"runs": "RUN,0123456789abcdef0123456789abcdef"}, 404, "run(s) not found: 0123456789abcdef0123456789abcdef"),
    ({"runs": "RUN,../etc/passwd"}, 422, "not a run id"),
])
def test_error_shapes(http: TestClient, runs: dict[str, str], query: dict[str, str], status: int, words: str) -> None:
    params = {key: value.replace("RUN", runs["svm"]) for key, value in query.items()}
    response = http.get("/api/compare", params=params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == "runs" and words in error["message"]


def test_parse_run_ids() -> None:
    assert parse_run_ids(" a1 , b2,c3 ") == ["a1", "b2", "c3"]
    assert len(parse_run_ids(",".join(f"r{i}" for i in range(50)))) == 50
