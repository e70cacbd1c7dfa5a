"""GET /api/compare/significance for regression and multiclass runs: the task's tests, checked against
scipy and scikit-learn on the runs' own logged predictions, and a clear reason for runs of two tasks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy import stats
from sklearn.metrics import f1_score, mean_squared_error

from mlscope.web.app import create_app
from tests.conftest import Store

URL = "/api/compare/significance"
ROWS = 150


def log_run(store: Store, experiment: str, name: str, kind: str | None, predictions: pd.DataFrame,
            folds: dict[str, list[float]], metrics: dict[str, float], tmp: Path, stratified: bool) -> str:
    """A finished run the way any tool could log it: the task tag (or none), metrics, cv_folds.json and
    predictions.csv (first column the row id)."""
    client = store.client()
    run = client.create_run(store.experiment(experiment), run_name=name,
                            tags={"mlscope.task": kind} if kind else {})
    run_id = run.info.run_id
    for key, value in {"dataset_digest": "d1", "cv_seed": "7", "train_rows": "600", "cv_folds": "5"}.items():
        client.log_param(run_id, key, value)
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    folder = tmp / run_id
    folder.mkdir()
    predictions.to_csv(folder / "predictions.csv", index=False)
    (folder / "cv_folds.json").write_text(json.dumps({"values": folds, "seed": 7, "stratified": stratified}))
    client.log_artifact(run_id, str(folder / "predictions.csv"))
    client.log_artifact(run_id, str(folder / "cv_folds.json"))
    client.set_terminated(run_id)
    return run_id


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestClient, dict[str, str], dict[str, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("significance-tasks")
    store = Store(root)
    rng = np.random.default_rng(11)
    ids = np.arange(1000, 1000 + ROWS)
    y = rng.normal(150, 60, ROWS)
    frames = {
        "ridge": pd.DataFrame({"id": ids, "y_true": y, "y_pred": y + rng.normal(0, 30, ROWS)}),
        "forest": pd.DataFrame({"id": ids, "y_true": y, "y_pred": y + rng.normal(5, 45, ROWS)}),
    }
    labels = np.array(["class_0", "class_1", "class_2"], dtype=object)
    truth = labels[rng.integers(0, 3, ROWS)]
    frames["svc"] = pd.DataFrame({"id": ids, "y_true": truth,
                                  "y_pred": np.where(rng.random(ROWS) < 0.85, truth, labels[rng.integers(0, 3, ROWS)])})
    frames["logistic"] = pd.DataFrame({"id": ids, "y_true": truth,
                                       "y_pred": np.where(rng.random(ROWS) < 0.6, truth, labels[rng.integers(0, 3, ROWS)])})
    tmp = root / "staging"
    tmp.mkdir()
    logged = {
        "ridge": log_run(store, "diabetes", "ridge", "regression", frames["ridge"],
                         {"rmse": [52.0, 55.1, 50.3, 57.9, 53.3]}, {"rmse": 30.0, "mae": 24.0}, tmp, False),
        "forest": log_run(store, "diabetes", "forest", None, frames["forest"],  # no tag: its metrics say regression
                          {"rmse": [58.2, 60.0, 55.5, 61.0, 59.4]}, {"rmse": 45.0, "r2": 0.4}, tmp, False),
        "svc": log_run(store, "wine", "svc", "multiclass", frames["svc"],
                       {"roc_auc": [0.97, 0.98, 0.96, 0.99, 0.97]}, {"accuracy": 0.9, "f1_macro": 0.9}, tmp, True),
        "logistic": log_run(store, "wine", "logistic", "multiclass", frames["logistic"],
                            {"roc_auc": [0.91, 0.93, 0.90, 0.92, 0.94]}, {"accuracy": 0.7, "f1_macro": 0.7}, tmp, True),
    }
    return TestClient(create_app(store.settings())), logged, frames


def by_key(body: dict) -> dict[str, dict]:
    return {test["key"]: test for test in body["tests"]}


def test_regression_runs_get_error_tests_and_an_rmse_bootstrap(runs) -> None:
    http, logged, frames = runs
    body = http.get(URL, params={"a": logged["ridge"], "b": logged["forest"]}).json()
    assert (body["task"], body["metric"]) == ("regression", "rmse")
    tests = by_key(body)
    assert list(tests) == ["nadeau_bengio", "paired_squared_error", "paired_absolute_error", "bootstrap_rmse"]
    assert all(t["available"] for t in tests.values()), [t["reason"] for t in tests.values()]
    y, a = frames["ridge"]["y_true"].to_numpy(), frames["ridge"]["y_pred"].to_numpy()
    b = frames["forest"]["y_pred"].to_numpy()
    for key, loss in (("paired_squared_error", np.square), ("paired_absolute_error", np.abs)):
        expected = stats.ttest_rel(loss(y - a), loss(y - b))
        assert tests[key]["statistic"] == pytest.approx(float(expected.statistic), abs=1e-9)
        assert tests[key]["p_value"] == pytest.approx(float(expected.pvalue), abs=1e-12)
    rmse = tests["bootstrap_rmse"]
    assert rmse["details"]["rmse_a"] == pytest.approx(np.sqrt(mean_squared_error(y, a)), abs=1e-9)
    assert rmse["estimate"] == pytest.approx(np.sqrt(mean_squared_error(y, a)) - np.sqrt(mean_squared_error(y, b)),
                                             abs=1e-9)
    assert rmse["ci_low"] < rmse["estimate"] < rmse["ci_high"] < 0  # ridge's errors are clearly smaller
    # the verdict: the RMSE bootstrap speaks, and lower RMSE is the better side
    assert body["verdict"].startswith("ridge beats forest on RMSE by ") and body["significant"] is True
    assert tests["nadeau_bengio"]["summary"].startswith("Averaged over 5 CV folds, ridge beats forest on rmse")


def test_multiclass_runs_get_mcnemar_and_a_macro_f1_bootstrap(runs) -> None:
    http, logged, frames = runs
    body = http.get(URL, params={"a": logged["logistic"], "b": logged["svc"]}).json()
    assert (body["task"], body["metric"]) == ("multiclass", "roc_auc")
    tests = by_key(body)
    assert list(tests) == ["nadeau_bengio", "mcnemar", "bootstrap_macro_f1"]
    assert all(t["available"] for t in tests.values()), [t["reason"] for t in tests.values()]
    truth = frames["svc"]["y_true"].to_numpy()
    f1 = [f1_score(truth, frames[n]["y_pred"], average="macro") for n in ("logistic", "svc")]
    boot = tests["bootstrap_macro_f1"]
    assert (boot["details"]["f1_macro_a"], boot["details"]["f1_macro_b"]) == (pytest.approx(f1[0], abs=1e-12),
                                                                              pytest.approx(f1[1], abs=1e-12))
    right = [frames[n]["y_pred"].to_numpy() == truth for n in ("logistic", "svc")]
    assert tests["mcnemar"]["details"]["b"] == int(np.sum(right[0] & ~right[1]))
    assert body["verdict"].startswith("svc beats logistic on macro F1 by ") and body["significant"] is True


def test_runs_of_two_tasks_say_why_their_predictions_cannot_be_paired(runs) -> None:
    http, logged, _ = runs
    response = http.get(URL, params={"a": logged["ridge"], "b": logged["svc"]})
    assert response.status_code == 200
    body = response.json()
    reasons = [t["reason"] for t in body["tests"] if t["key"] != "nadeau_bengio"]
    assert reasons and all(r == "the runs solve different tasks (regression and multiclass): their predictions "
                                 "cannot be compared row by row" for r in reasons)
