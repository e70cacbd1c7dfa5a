"""Issue 14's user story over HTTP: a GradientBoostingClassifier logged by `mlflow.sklearn.autolog` on
scikit-learn's breast-cancer data (30 numeric features) is explained from the dashboard's Compute
button exactly (tree path, log-odds), and its values equal shap's interventional TreeExplainer on the
same background. A model without a closed form at that width (an SVM) comes back sampled, with a
standard error per value."""

from __future__ import annotations

import warnings

import mlflow
import numpy as np
import pytest
import shap
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mlscope.explain.service import stored_explanation
from mlscope.tracking.client import bind_fluent_api
from mlscope.web.app import create_app
from tests.conftest import Store, mlflow_state_kept

pytestmark = pytest.mark.slow


def autolog_run(store: Store, estimator: object, name: str) -> str:
    """One autologged fit with its input example (autolog keeps the first 5 training rows)."""
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    experiment_id = store.experiment("wide")
    with mlflow_state_kept(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bind_fluent_api(store.settings())
        mlflow.sklearn.autolog(log_input_examples=True, log_datasets=False, silent=True)
        try:
            with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
                estimator.fit(X, y)
        finally:
            mlflow.sklearn.autolog(disable=True)
    return run.info.run_id


def test_breast_cancer_boosting_is_explained_exactly_from_the_compute_button(store: Store) -> None:
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0)
    run_id = autolog_run(store, model, "boosting")
    http = TestClient(create_app(store.settings()))
    url = f"/api/runs/{run_id}/explanation"
    assert http.get(url).json()["can_compute"] is True

    computed = http.post(url)
    assert computed.status_code == 200, computed.text
    meta = http.get(url).json()["metadata"]
    assert meta["exact"] is True and meta["path"] == "tree" and meta["features"] == 30
    assert meta["model_output"] == "log-odds of class 1"

    explanation, background = stored_explanation(store.client(), run_id)
    assert explanation.values.shape[1] == 30 and explanation.standard_errors is None
    assert explanation.additivity_errors.max() <= 1e-6
    assert np.allclose(explanation.outputs, model.decision_function(explanation.data), atol=1e-9)
    reference = shap.TreeExplainer(model, background, feature_perturbation="interventional")
    theirs = reference.shap_values(explanation.data, check_additivity=False)
    assert np.abs(explanation.values - theirs).max() <= 1e-6


def test_a_wide_model_without_closed_form_is_sampled_with_standard_errors(store: Store) -> None:
    model = make_pipeline(StandardScaler(), SVC(probability=True, random_state=0))
    run_id = autolog_run(store, model, "svm")
    http = TestClient(create_app(store.settings()))
    url = f"/api/runs/{run_id}/explanation"
    assert http.post(url).status_code == 200
    meta = http.get(url).json()["metadata"]
    assert meta["exact"] is False and meta["path"] == "sampling"
    assert meta["model_output"] == "probability of class 1"

    explanation, _ = stored_explanation(store.client(), run_id)
    errors = explanation.standard_errors
    assert errors is not None and errors.shape == explanation.values.shape
    assert explanation.additivity_errors.max() <= 1e-9  # efficiency holds exactly, sampled or not
    if meta["converged"]:
        assert errors.max() <= store.settings().explain_tolerance
    else:
        assert "budget" in meta["stop_reason"]
