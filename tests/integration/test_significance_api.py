"""GET /api/compare/significance on real runs, checked against numbers computed here from the artifacts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from scipy import stats
from sklearn.metrics import roc_auc_score

from mlscope.stats import two_runs
from mlscope.stats.two_runs import compare_two
from mlscope.web.app import create_app
from tests.conftest import Store, copy_of

pytestmark = pytest.mark.slow
URL = "/api/compare/significance"


@pytest.fixture(scope="module")
def http(trained) -> TestClient:
    store, _ = trained
    return TestClient(create_app(store.settings()))


@pytest.fixture(scope="module")
def run_ids(trained) -> dict[str, str]:
    store, _ = trained
    client = store.client()
    experiment = client.get_experiment_by_name("titanic")
    return {r.info.run_name: r.info.run_id for r in client.search_runs([experiment.experiment_id])}


def by_key(body: dict) -> dict[str, dict]:
    return {test["key"]: test for test in body["tests"]}


def download(client: MlflowClient, run_id: str, name: str, folder: Path) -> Path:
    target = folder / run_id
    target.mkdir(exist_ok=True)
    return Path(client.download_artifacts(run_id, name, str(target)))


def literal_corrected_t(a: list[float], b: list[float]) -> tuple[float, float, float, float, float]:
    k = len(a)
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(d) / k
    se = math.sqrt((1 / k + 1 / (k - 1)) * sum((x - mean) ** 2 for x in d) / (k - 1))
    half = stats.t.ppf(0.975, k - 1) * se
    return mean, mean / se, 2 * stats.t.sf(abs(mean / se), k - 1), mean - half, mean + half


def test_numbers_equal_an_independent_computation(http, trained, run_ids, tmp_path: Path) -> None:
    store, _ = trained
    client = store.client()
    a, b = run_ids["svm"], run_ids["rf-baseline"]
    response = http.get(URL, params={"a": a, "b": b})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metric"] == "roc_auc"
    assert body["run_a"] == {"run_id": a, "name": "svm"} and body["run_b"] == {"run_id": b, "name": "rf-baseline"}
    tests = by_key(body)
    assert list(tests) == ["nadeau_bengio", "mcnemar", "bootstrap_auc"] and all(t["available"] for t in tests.values())

    folds = [json.loads(download(client, r, "cv_folds.json", tmp_path).read_text())["values"]["roc_auc"] for r in (a, b)]
    history = [[m.value for m in sorted(client.get_metric_history(r, "cv_roc_auc"), key=lambda m: m.step)]
               for r in (a, b)]
    assert folds == history and len(folds[0]) == 5
    mean, t, p, low, high = literal_corrected_t(*folds)
    fold = tests["nadeau_bengio"]
    assert fold["title"] == "Corrected resampled t-test (Nadeau–Bengio) on 5 CV folds"
    assert fold["estimate"] == pytest.approx(mean, abs=1e-12) and fold["statistic"] == pytest.approx(t, rel=1e-9)
    assert fold["p_value"] == pytest.approx(p, rel=1e-9)
    assert (fold["ci_low"], fold["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    assert fold["details"]["folds_a"] == folds[0] and fold["details"]["train_rows"] == 712

    pa, pb = (pd.read_csv(download(client, r, "predictions.csv", tmp_path)) for r in (a, b))
    joined = pa.merge(pb, on="PassengerId", suffixes=("_a", "_b"))
    assert len(joined) == len(pa) == 179
    right_a = joined["y_pred_a"] == joined["y_true_a"]
    right_b = joined["y_pred_b"] == joined["y_true_b"]
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    mcnemar = tests["mcnemar"]
    assert (mcnemar["details"]["b"], mcnemar["details"]["c"]) == (only_a, only_b)
    if only_a + only_b < 25:
        expected = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    else:
        expected = math.erfc(math.sqrt((abs(only_a - only_b) - 1) ** 2 / (only_a + only_b) / 2))
    assert mcnemar["p_value"] == pytest.approx(expected, rel=1e-9)
    assert mcnemar["estimate"] == pytest.approx(right_a.mean() - right_b.mean())

    y = joined["y_true_a"].to_numpy()
    auc_a, auc_b = roc_auc_score(y, joined["probability_a"]), roc_auc_score(y, joined["probability_b"])
    runs = {r: client.get_run(r).data.metrics["roc_auc"] for r in (a, b)}
    boot = tests["bootstrap_auc"]
    assert boot["details"]["auc_a"] == pytest.approx(auc_a, abs=1e-12) == runs[a]
    assert boot["estimate"] == pytest.approx(auc_a - auc_b, abs=1e-12)
    assert boot["estimate"] == pytest.approx(runs[a] - runs[b], abs=1e-12)
    assert boot["details"]["resamples"] == 2000 and boot["ci_low"] < boot["estimate"] < boot["ci_high"]
    # the same 2,000 resamples, by the pairwise definition of the AUC (sklearn checks the first 20)
    rows = np.random.default_rng(0).integers(0, len(y), size=(2000, len(y)))
    counts = np.stack([np.bincount(r, minlength=len(y)) for r in rows]).astype(float)

    def pairwise_auc(score: np.ndarray) -> np.ndarray:
        wins = (score[:, None] > score[None, :]) + 0.5 * (score[:, None] == score[None, :])
        pos, neg = counts * (y == 1), counts * (y == 0)
        return np.einsum("bi,ij,bj->b", pos, wins, neg) / (pos.sum(axis=1) * neg.sum(axis=1))

    scores = [joined[f"probability_{s}"].to_numpy() for s in "ab"]
    diffs = pairwise_auc(scores[0]) - pairwise_auc(scores[1])
    for i in range(20):
        pick = rows[i]
        assert diffs[i] == pytest.approx(roc_auc_score(y[pick], scores[0][pick]) - roc_auc_score(y[pick], scores[1][pick]))
    assert (boot["ci_low"], boot["ci_high"]) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])), abs=1e-12)


def test_the_verdict_leads_with_the_bootstrap_and_names_both_runs(http, run_ids) -> None:
    body = http.get(URL, params={"a": run_ids["svm"], "b": run_ids["rf-baseline"]}).json()
    boot = by_key(body)["bootstrap_auc"]
    better, worse = ("svm", "rf-baseline") if boot["estimate"] > 0 else ("rf-baseline", "svm")
    verdict = body["verdict"]
    assert verdict.startswith(f"{better} beats {worse} on ROC-AUC by {abs(boot['estimate']):.3f}, 95% CI [")
    assert body["significant"] is (boot["p_value"] < 0.05)
    assert ("not significant" in verdict) is (not body["significant"])
    for test in body["tests"]:
        assert test["summary"] and "svm" in test["summary"] and "rf-baseline" in test["summary"]


def test_reversed_order_negates_every_estimate(http, run_ids) -> None:
    ab = by_key(http.get(URL, params={"a": run_ids["svm"], "b": run_ids["rf-tuned"]}).json())
    reversed_body = http.get(URL, params={"a": run_ids["rf-tuned"], "b": run_ids["svm"]}).json()
    ba = by_key(reversed_body)
    for key in ab:
        assert ba[key]["estimate"] == pytest.approx(-ab[key]["estimate"], abs=1e-12), key
        assert ba[key]["p_value"] == pytest.approx(ab[key]["p_value"], rel=1e-9), key
    for key in ("nadeau_bengio", "bootstrap_auc"):
        assert ba[key]["ci_low"] == pytest.approx(-ab[key]["ci_high"], abs=1e-12)
    assert (ba["mcnemar"]["details"]["b"], ba["mcnemar"]["details"]["c"]) == \
        (ab["mcnemar"]["details"]["c"], ab["mcnemar"]["details"]["b"])
    forward = http.get(URL, params={"a": run_ids["svm"], "b": run_ids["rf-tuned"]}).json()["verdict"]
    assert reversed_body["verdict"] == forward  # the better run is named first either way


def test_other_metrics_use_their_own_folds(http, trained, run_ids) -> None:
    store, _ = trained
    a, b = run_ids["logistic-regression"], run_ids["rf-baseline"]
    accuracy = by_key(http.get(URL, params={"a": a, "b": b, "metric": "accuracy"}).json())
    fold = accuracy["nadeau_bengio"]
    assert fold["title"].endswith("on 5 CV folds of accuracy")
    logged = {r: store.client().get_run(r).data.metrics["cv_accuracy_mean"] for r in (a, b)}
    assert fold["details"]["mean_a"] == pytest.approx(logged[a], abs=1e-12)
    assert fold["estimate"] == pytest.approx(logged[a] - logged[b], abs=1e-12)
    assert "always ROC-AUC" in accuracy["bootstrap_auc"]["title"]
    loss = by_key(http.get(URL, params={"a": a, "b": b, "metric": "log_loss"}).json())["nadeau_bengio"]
    lower = "logistic-regression" if loss["estimate"] < 0 else "rf-baseline"
    assert loss["summary"].startswith(f"Averaged over 5 CV folds, {lower} beats")
    missing = by_key(http.get(URL, params={"a": a, "b": b, "metric": "no_such_metric"}).json())["nadeau_bengio"]
    assert not missing["available"] and "cv_no_such_metric" in missing["reason"]


def test_accuracy_folds_match_the_logged_history(http, trained, run_ids) -> None:
    store, _ = trained
    client = store.client()
    a, b = run_ids["rf-tuned"], run_ids["svm"]
    fold = by_key(http.get(URL, params={"a": a, "b": b, "metric": "accuracy"}).json())["nadeau_bengio"]
    for key, run_id in (("folds_a", a), ("folds_b", b)):
        logged = [m.value for m in sorted(client.get_metric_history(run_id, "cv_accuracy"), key=lambda m: m.step)]
        assert fold["details"][key] == logged


def test_a_plain_mlflow_run_gets_reasons_not_errors(trained, run_ids, tmp_path: Path) -> None:
    store = copy_of(trained[0], tmp_path / "copy")
    client = store.client()
    experiment = client.create_experiment("plain", artifact_location=(tmp_path / "plain").as_uri())
    plain = client.create_run(experiment, run_name="hand-logged").info.run_id
    client.log_metric(plain, "roc_auc", 0.7)
    client.set_terminated(plain)
    http = TestClient(create_app(store.settings()))
    response = http.get(URL, params={"a": plain, "b": run_ids["svm"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["significant"] is None and "hand-logged" in body["verdict"] and "svm" in body["verdict"]
    tests = by_key(body)
    assert not any(t["available"] for t in tests.values())
    for test in tests.values():
        assert test["reason"] and test["p_value"] is None and test["estimate"] is None
    assert tests["mcnemar"]["reason"] == ("run 'hand-logged' has no predictions.csv artifact: McNemar's test needs "
                                          "both runs' predictions on the same test rows")
    assert "run 'hand-logged' has no per-fold ROC-AUC scores (cv_folds.json" in tests["nadeau_bengio"]["reason"]
    assert "'hand-logged'" in tests["bootstrap_auc"]["reason"] and "predictions.csv" in tests["bootstrap_auc"]["reason"]


def test_errors_name_the_field(http, run_ids) -> None:
    svm = run_ids["svm"]
    for params, status, field in [
        ({"a": "0" * 32, "b": svm}, 404, "a"),
        ({"a": svm, "b": "f" * 32}, 404, "b"),
        ({"a": svm, "b": svm}, 422, "b"),
        ({"b": svm}, 422, "a"),
        ({"a": svm}, 422, "b"),
        ({"a": svm, "b": run_ids["rf-tuned"], "metric": ""}, 422, "metric"),
        ({"a": "../etc", "b": svm}, 422, "a"),
    ]:
        response = http.get(URL, params=params)
        assert response.status_code == status, (params, response.text)
        error = response.json()["error"]
        assert error["field"] == field and error["message"], params


def test_openapi_documents_the_route(http) -> None:
    spec = http.get("/openapi.json").json()
    route = spec["paths"][URL]["get"]
    assert route["tags"] == ["compare"] and "Nadeau" in route["description"]
    assert {p["name"] for p in route["parameters"]} == {"a", "b", "metric"}
    schema = route["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert schema.endswith("/Significance")
    assert set(spec["components"]["schemas"]["Significance"]["properties"]) == \
        {"metric", "task", "run_a", "run_b", "verdict", "significant", "tests"}


def test_finished_runs_are_cached_running_ones_are_not(trained, run_ids, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = copy_of(trained[0], tmp_path / "copy")
    app = create_app(store.settings())
    http = TestClient(app)
    svm, rf = run_ids["svm"], run_ids["rf-baseline"]
    first = http.get(URL, params={"a": svm, "b": rf}).json()
    cache = app.state.web.services["significance"]
    assert len(cache) == 1
    running = store.client().create_run(store.client().get_experiment_by_name("titanic").experiment_id,
                                        run_name="in-progress").info.run_id
    assert http.get(URL, params={"a": running, "b": rf}).status_code == 200
    assert len(cache) == 1  # the running run's comparison was not kept

    def fail(*_: object, **__: object) -> None:
        raise AssertionError("recomputed")

    monkeypatch.setattr(two_runs, "compare_runs", fail)
    assert http.get(URL, params={"a": svm, "b": rf}).json() == first  # served from the cache


# ---------------------------------------------------------------- runs logged by hand (no mlscope artifacts)

def log_run(client: MlflowClient, experiment: str, name: str, folds: list[float] | None = None,
            params: dict[str, str] | None = None, predictions: pd.DataFrame | None = None,
            folder: Path | None = None) -> str:
    run_id = client.create_run(experiment, run_name=name).info.run_id
    metrics = [Metric("cv_roc_auc", value, 0, step) for step, value in enumerate(folds or [])]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in (params or {}).items()])
    if predictions is not None and folder is not None:
        path = folder / name / "predictions.csv"
        path.parent.mkdir(parents=True)
        predictions.to_csv(path, index=False)
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    return run_id


SAME = {"dataset_digest": "abc", "cv_seed": "7", "cv_folds": "5", "train_rows": "800"}


def test_fold_history_stands_in_for_cv_folds_json(store: Store, tmp_path: Path) -> None:
    client = store.client()
    experiment = client.create_experiment("by-hand", artifact_location=(tmp_path / "art").as_uri())
    a_folds, b_folds = [0.81, 0.84, 0.80, 0.86, 0.83], [0.78, 0.80, 0.79, 0.81, 0.80]
    a = log_run(client, experiment, "mine", a_folds, SAME)
    b = log_run(client, experiment, "theirs", b_folds, SAME)
    result = compare_two(client, a, b)
    fold, mcnemar, boot = result.tests
    mean, t, p, low, high = literal_corrected_t(a_folds, b_folds)
    assert fold.available and fold.estimate == pytest.approx(mean) and fold.p_value == pytest.approx(p)
    assert (fold.ci_low, fold.ci_high) == pytest.approx((low, high))
    assert not mcnemar.available and not boot.available
    assert mcnemar.reason is not None and "runs 'mine' and 'theirs' have no predictions.csv artifact" in mcnemar.reason
    assert result.verdict.startswith(f"mine beats theirs on cross-validated ROC-AUC by {mean:.3f}, 95% CI [")
    assert result.significant is bool(p < 0.05)

    for change, words in [({"dataset_digest": "xyz"}, "differ in dataset digest"), ({"cv_seed": "8"}, "CV seed"),
                          ({"train_rows": "700"}, "training rows")]:
        other = log_run(client, experiment, f"other-{len(words)}", b_folds, {**SAME, **change})
        reason = compare_two(client, a, other).tests[0].reason
        assert reason is not None and words in reason, reason
    unseeded = log_run(client, experiment, "unseeded", b_folds, {"dataset_digest": "abc", "cv_folds": "5"})
    assert "run 'unseeded' has no recorded CV seed" in (compare_two(client, a, unseeded).tests[0].reason or "")
    fewer = log_run(client, experiment, "fewer", b_folds[:3], {**SAME, "cv_folds": "3"})
    assert "has 5 CV folds and 'fewer' 3" in (compare_two(client, a, fewer).tests[0].reason or "")
    shifted = log_run(client, experiment, "shifted", [v - 0.02 for v in a_folds], SAME)
    degenerate = compare_two(client, a, shifted)
    assert not degenerate.tests[0].available and "degenerate" in (degenerate.tests[0].reason or "")
    assert degenerate.significant is None


def test_predictions_on_different_rows_are_not_paired(store: Store, tmp_path: Path) -> None:
    client = store.client()
    experiment = client.create_experiment("rows", artifact_location=(tmp_path / "art").as_uri())
    rng = np.random.default_rng(0)

    def frame(ids: range) -> pd.DataFrame:
        y = np.arange(len(ids)) % 2
        proba = np.clip(0.3 * y + rng.random(len(ids)) * 0.7, 0, 1)
        return pd.DataFrame({"id": list(ids), "y_true": y, "probability": proba, "y_pred": (proba >= 0.5).astype(int)})

    a = log_run(client, experiment, "first", predictions=frame(range(0, 60)), folder=tmp_path)
    b = log_run(client, experiment, "second", predictions=frame(range(30, 90)), folder=tmp_path)
    c = log_run(client, experiment, "third", predictions=frame(range(0, 60)).drop(columns="y_pred"), folder=tmp_path)
    apart = compare_two(client, a, b)
    assert not apart.tests[1].available and not apart.tests[2].available
    assert "different test rows (30 shared ids of 60 and 60)" in (apart.tests[1].reason or "")
    shared = compare_two(client, a, c)
    assert shared.tests[2].available and not shared.tests[1].available
    assert "run 'third' has no y_pred column" in (shared.tests[1].reason or "")
    assert shared.verdict.startswith(("first beats third on ROC-AUC", "third beats first on ROC-AUC"))
    repeated = frame(range(0, 60))
    repeated.loc[1, "id"] = 0
    d = log_run(client, experiment, "repeats", predictions=repeated, folder=tmp_path)
    reason = compare_two(client, a, d).tests[2].reason or ""
    assert reason.startswith("run 'repeats' has a predictions.csv that repeats ids in its first column: the bootstrap")
