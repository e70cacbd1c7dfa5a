"""Experiments without the headline metric (real `mlflow.sklearn.autolog` runs) get a sensible default
"best by" metric in every place that ranks runs: the runs view's API, the experiments list, `mlscope runs`."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from mlscope.web.app import create_app
from tests.conftest import Store, invoke
from tests.user_runs import AUTOLOG, PRIVATE_METRIC, SCORED, AutologRuns

pytestmark = pytest.mark.slow

AUTOLOG_DEFAULT = "training_roc_auc"  # in all four fitted runs; the headline roc_auc is in none


@pytest.fixture(scope="module")
def http(user_logged: tuple[Store, AutologRuns]) -> TestClient:
    store, _ = user_logged
    return TestClient(create_app(store.settings()))


def expected_best(store: Store, experiment_id: str, metric: str) -> tuple[str, float]:
    """The documented rule over MLflow's own answer: highest value, then earliest start, then run id."""
    runs = [run for run in store.client().search_runs([experiment_id])
            if metric in run.data.metrics and not math.isnan(run.data.metrics[metric])]
    best = min(runs, key=lambda run: (-run.data.metrics[metric], run.info.start_time, run.info.run_id))
    return best.info.run_id, best.data.metrics[metric]


def test_autolog_runs_log_training_metrics_and_one_private_post_training_metric(user_logged) -> None:
    """What the default has to cope with, as mlflow.sklearn.autolog really logs it."""
    store, autolog = user_logged
    runs = {run.info.run_id: run for run in store.client().search_runs([autolog.experiment_id])}
    assert len(runs) == 4 + len(autolog.grid_children) == 7
    having = {key: sum(key in run.data.metrics for run in runs.values())
              for run in runs.values() for key in run.data.metrics}
    assert having[PRIVATE_METRIC] == 1 and PRIVATE_METRIC in runs[autolog.runs["boosting"]].data.metrics
    assert having[AUTOLOG_DEFAULT] == 4 and "roc_auc" not in having
    assert having["mean_test_score"] == 3  # the GridSearchCV candidates (child runs)


def test_the_runs_page_defaults_to_the_metric_most_runs_have(http: TestClient, user_logged) -> None:
    """Failed before: the page ranked by the absent roc_auc (no best run); the view then picked the private
    GradientBoostingClassifier_score_X_test."""
    store, autolog = user_logged
    body = http.get("/api/runs/page", params={"experiment": AUTOLOG}).json()
    assert (body["metric"], body["direction"], body["metric_source"]) == (AUTOLOG_DEFAULT, "max", "most_runs")
    assert body["metric_reason"] == "the most runs have it (4 of 7 finished runs); roc_auc is in none"
    run_id, value = expected_best(store, autolog.experiment_id, AUTOLOG_DEFAULT)
    assert body["best_run_id"] == run_id and body["best_reason"] == f"best by {AUTOLOG_DEFAULT}, {value:.4g}"
    assert [run["run_id"] for run in body["runs"] if run["is_best"]] == [run_id]

    columns = http.get(f"/api/experiments/{AUTOLOG}/columns").json()
    assert columns["best_by"] == {key: body[key] for key in ("metric", "direction")} | {
        "source": "most_runs", "reason": body["metric_reason"]}
    assert PRIVATE_METRIC in columns["metrics"]
    assert columns["metric_runs"][PRIVATE_METRIC] == 1 and columns["metric_runs"][AUTOLOG_DEFAULT] == 4

    listing = http.get("/api/runs", params={"experiment": AUTOLOG}).json()
    assert (listing["metric"], listing["metric_source"]) == (AUTOLOG_DEFAULT, "most_runs")
    assert listing["best_run_id"] == run_id


def test_the_users_pick_still_wins(http: TestClient, user_logged) -> None:
    store, autolog = user_logged
    for route in ("/api/runs/page", "/api/runs"):
        body = http.get(route, params={"experiment": AUTOLOG, "metric": PRIVATE_METRIC}).json()
        assert (body["metric"], body["metric_source"]) == (PRIVATE_METRIC, "chosen")
        assert body["best_run_id"] == autolog.runs["boosting"]
        by_loss = http.get(route, params={"experiment": AUTOLOG, "metric": "training_log_loss"}).json()
        assert by_loss["direction"] == "min"
        assert by_loss["best_run_id"] == min(
            (run for run in store.client().search_runs([autolog.experiment_id])
             if "training_log_loss" in run.data.metrics),
            key=lambda run: (run.data.metrics["training_log_loss"], run.info.start_time, run.info.run_id)).info.run_id
    forced = http.get("/api/experiments", params={"metric": "accuracy"}).json()
    assert forced["metric"] == "accuracy" and forced["metric_source"] == "chosen"
    assert {(e["metric"], e["metric_source"]) for e in forced["experiments"]} == {("accuracy", "chosen")}
    assert {AUTOLOG, SCORED, "Default"} <= {e["name"] for e in forced["experiments"]}
    assert next(e for e in forced["experiments"] if e["name"] == AUTOLOG)["best_value"] is None


def test_the_experiments_list_shows_each_experiments_own_default_and_best(http: TestClient, user_logged) -> None:
    """Failed before: the autolog experiment had no best at all (ranked by the absent roc_auc)."""
    store, autolog = user_logged
    body = http.get("/api/experiments").json()
    assert (body["metric"], body["metric_source"]) == ("roc_auc", "headline")
    found = {e["name"]: e for e in body["experiments"]}
    run_id, value = expected_best(store, autolog.experiment_id, AUTOLOG_DEFAULT)
    auto = found[AUTOLOG]
    assert (auto["metric"], auto["metric_source"], auto["best_run_id"], auto["best_value"]) == (
        AUTOLOG_DEFAULT, "most_runs", run_id, value)
    assert (found["Default"]["metric"], found["Default"]["best_run_id"]) == ("roc_auc", None)  # no runs
    scored = found[SCORED]
    assert (scored["metric"], scored["metric_source"]) == ("roc_auc", "headline")
    assert scored["metric_reason"] == "the headline metric, in 3 of 4 finished runs"
    assert (scored["best_value"], scored["best_run_name"]) == (0.8, "scored-1")


def test_mlscope_runs_says_which_metric_and_why(user_logged) -> None:
    """Failed before: 'No finished run has the metric 'roc_auc''."""
    store, autolog = user_logged
    result = invoke(store, "runs", "--experiment", AUTOLOG)
    assert result.exit_code == 0, result.output
    _, value = expected_best(store, autolog.experiment_id, AUTOLOG_DEFAULT)
    assert f"★ best by {AUTOLOG_DEFAULT}, {value:.4f} (higher is better): forest" in result.output
    assert (f"Best by {AUTOLOG_DEFAULT}: the most runs have it (4 of 7 finished runs); roc_auc is in none "
            "(--metric picks another).") in result.output
    picked = invoke(store, "runs", "--experiment", AUTOLOG, "--metric", PRIVATE_METRIC)
    assert picked.exit_code == 0 and f"★ best by {PRIVATE_METRIC}" in picked.output
    assert ": boosting" in picked.output and "Best by" not in picked.output
    scored = invoke(store, "runs", "--experiment", SCORED)
    assert "★ best by roc_auc, 0.8000 (higher is better): scored-1" in scored.output


def test_a_filtered_listing_keeps_the_experiments_default(user_logged) -> None:
    """The default is the whole experiment's, not the filtered rows' (here only the private metric's run)."""
    store, _ = user_logged
    result = invoke(store, "runs", "--experiment", AUTOLOG, "--filter", "attributes.run_name = 'boosting'")
    assert result.exit_code == 0, result.output
    assert f"best by {AUTOLOG_DEFAULT}" in result.output and "boosting" in result.output
