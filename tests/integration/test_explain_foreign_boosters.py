"""Runs mlscope did not log, from `mlflow.xgboost.autolog` and `mlflow.lightgbm.autolog`: the dashboard's
Compute explains them exactly (their flavors reload scikit-learn-API estimators); a raw booster from the
native train API gets a one-line reason instead of a traceback."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import mlflow
import mlflow.lightgbm
import mlflow.xgboost
import numpy as np
import pytest
import xgboost
from fastapi.testclient import TestClient
from lightgbm import LGBMRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes
from xgboost import XGBClassifier

from mlscope.explain.dashboard import wait_for_plots
from mlscope.explain.service import stored_explanation
from mlscope.tracking.client import allow_model_loading
from mlscope.web.app import create_app
from tests.conftest import Store, mlflow_state_kept

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, dict[str, str]]]:
    store = Store(tmp_path_factory.mktemp("foreign-boosters"))
    with mlflow_state_kept(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.set_tracking_uri(store.uri)
        experiment = store.experiment("boosters")
        cancer, diabetes = load_breast_cancer(as_frame=True), load_diabetes(as_frame=True)
        ids = {}
        mlflow.xgboost.autolog(log_input_examples=True, silent=True)
        with mlflow.start_run(experiment_id=experiment, run_name="xgb-classifier") as run:
            XGBClassifier(n_estimators=30, max_depth=3).fit(cancer.data, cancer.target)
        ids["xgb"] = run.info.run_id
        with mlflow.start_run(experiment_id=experiment, run_name="xgb-native") as run:
            xgboost.train({"max_depth": 2}, xgboost.DMatrix(cancer.data, label=cancer.target), num_boost_round=5)
        ids["native"] = run.info.run_id
        mlflow.xgboost.autolog(disable=True)
        mlflow.lightgbm.autolog(log_input_examples=True, silent=True)
        with mlflow.start_run(experiment_id=experiment, run_name="lgbm-regressor") as run:
            LGBMRegressor(n_estimators=30, verbose=-1).fit(diabetes.data, diabetes.target)
        ids["lgbm"] = run.info.run_id
        mlflow.lightgbm.autolog(disable=True)
        yield store, ids


@pytest.mark.parametrize(("name", "output"), [("xgb", "log-odds of class 1"), ("lgbm", "prediction")])
def test_compute_explains_an_autologged_booster_exactly(runs, name: str, output: str) -> None:
    store, ids = runs
    with mlflow_state_kept():
        http = TestClient(create_app(store.settings(trust_registry_models=True)))
        before = http.get(f"/api/runs/{ids[name]}/explanation").json()
        pressed = http.post(f"/api/runs/{ids[name]}/explanation")
        assert wait_for_plots()
    assert before["can_compute"] is True, before["compute_reason"]
    assert pressed.status_code == 200, pressed.text
    meta = pressed.json()["metadata"]
    assert (meta["path"], meta["exact"], meta["model_output"]) == ("tree", True, output)
    explanation, _ = stored_explanation(store.client(), ids[name])
    with mlflow_state_kept(), allow_model_loading(store.settings(trust_registry_models=True)):
        mlflow.set_tracking_uri(store.uri)
        flavor = mlflow.xgboost if name == "xgb" else mlflow.lightgbm
        model = flavor.load_model(f"runs:/{ids[name]}/model")
    rows = explanation.data[list(model.feature_names_in_)]
    raw = model.predict(rows, output_margin=True) if name == "xgb" else model.predict(rows)
    np.testing.assert_allclose(explanation.outputs, raw, rtol=1e-5, atol=1e-5)  # float32 boosters
    assert float(explanation.additivity_errors.max()) <= 1e-6


def test_a_raw_native_booster_is_refused_with_its_reason(runs) -> None:
    store, ids = runs
    with mlflow_state_kept():
        http = TestClient(create_app(store.settings(trust_registry_models=True)))
        pressed = http.post(f"/api/runs/{ids['native']}/explanation")
    assert pressed.status_code == 422, pressed.text
    assert pressed.json()["error"] == {
        "code": pressed.json()["error"]["code"], "field": "run_id",
        "message": f"run '{ids['native']}' has a xgboost.core.Booster, not a scikit-learn estimator (a raw booster "
                   "from the native train API?): explanations need its scikit-learn API (XGBClassifier, "
                   "LGBMRegressor, ...)"}
