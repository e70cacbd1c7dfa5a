"""Explanations as users meet them: logged at training time, and on demand from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlscope.data.loader import load_titanic
from mlscope.explain import artifacts
from mlscope.explain.service import stored_explanation
from mlscope.tracking.client import bind_fluent_api
from tests.conftest import Store, invoke

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_ids(trained) -> dict[str, str]:
    store, _ = trained
    client = store.client()
    experiment = client.get_experiment_by_name("titanic")
    return {r.info.run_name: r.info.run_id for r in client.search_runs([experiment.experiment_id])}


def test_every_run_logs_an_exact_explanation_of_its_test_split(trained, run_ids, tmp_path: Path) -> None:
    store, _ = trained
    client = store.client()
    for name, run_id in run_ids.items():
        listed = {a.path for a in client.list_artifacts(run_id, artifacts.FOLDER)}
        assert {f"{artifacts.FOLDER}/{f}" for f in ("test.json", "shap_importance.png", "shap_beeswarm.png")} <= listed
        explanation, background = stored_explanation(client, run_id)
        assert explanation.features == load_titanic().features  # one value per raw feature
        assert explanation.values.shape == (179, 7) and len(background) == 100
        assert explanation.additivity_errors.max() <= 1e-6, name
        meta = explanation.metadata
        assert meta["exact"] is True and meta["background_seed"] == 42 and meta["max_additivity_error"] <= 1e-6
        forest = name.startswith("rf")  # forests: the exact tree path; the others: enumeration over feature blocks
        assert meta["path"] == ("tree" if forest else "enumeration") and meta["seconds"] > 0
        assert meta["evaluator"] == ("tree closed form" if forest else "feature-blocks")
    predictions = pd.read_csv(client.download_artifacts(run_ids["svm"], "predictions.csv", str(tmp_path)))
    explanation, _ = stored_explanation(client, run_ids["svm"])
    assert explanation.row_ids == predictions["PassengerId"].tolist()
    assert np.allclose(explanation.outputs, predictions["probability"], atol=1e-12)


def test_cli_global_row_and_custom_input(trained, run_ids) -> None:
    store, _ = trained
    run_id = run_ids["rf-tuned"]
    overview = invoke(store, "explain", run_id)
    assert overview.exit_code == 0, overview.output
    assert "mean |SHAP|" in overview.output and "Sex" in overview.output and "(cached artifact)" in overview.output

    one = invoke(store, "explain", run_id, "--row", "0")
    assert one.exit_code == 0 and "contribution" in one.output and "base value" in one.output

    passenger = '{"pclass": 1, "sex": "female", "age": 28, "sibsp": 0, "parch": 0, "fare": 100}'
    first = invoke(store, "explain", run_id, "--input", passenger)
    assert first.exit_code == 0, first.output
    assert "exact" in first.output and "(cached artifact)" not in first.output
    probability = float(first.output.split("P(class 1) = ")[1].split()[0])
    assert probability > 0.5  # a first-class woman is a likely survivor
    again = invoke(store, "explain", run_id, "--input", passenger)
    assert "(cached artifact)" in again.output  # computed once, then read back from the run


def test_cli_compares_two_runs(trained, run_ids) -> None:
    store, _ = trained
    result = invoke(store, "explain", run_ids["rf-tuned"], "--compare", run_ids["svm"])
    assert result.exit_code == 0, result.output
    assert "Spearman" in result.output and "179 shared rows" in result.output and "Sex" in result.output


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--input", "{not json"], 2, "--input is not valid JSON"),
        (["--input", '{"colour": "red"}'], 2, "unknown feature(s) colour"),
        (["--input", '{"age": "old"}'], 2, "feature 'Age' must be a number or null"),
        (["--row", "999"], 2, "--row must be between 0 and 178"),
        (["--row", "1", "--input", "{}"], 2, "either --row or --input"),
    ],
)
def test_cli_explain_errors(trained, run_ids, args: list[str], code: int, needle: str) -> None:
    store, _ = trained
    result = invoke(store, "explain", run_ids["logistic-regression"], *args)
    assert result.exit_code == code, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_unknown_run(trained) -> None:
    store, _ = trained
    result = invoke(store, "explain", "0" * 32)
    assert result.exit_code == 1 and f"run '{'0' * 32}' not found" in result.output


def test_a_plain_mlflow_autolog_run_is_explained_on_demand(store: Store, tmp_path: Path) -> None:
    titanic = load_titanic().frame
    columns = ["Pclass", "SibSp", "Parch", "Fare"]
    bind_fluent_api(store.settings())
    experiment_id = store.experiment("plain")
    mlflow.sklearn.autolog(log_models=True, log_datasets=False, silent=True)
    try:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            LogisticRegression(max_iter=500).fit(titanic[columns], titanic["Survived"])
    finally:
        mlflow.sklearn.autolog(disable=True)
    data = tmp_path / "sample.csv"
    titanic.head(40).to_csv(data, index=False)

    missing = invoke(store, "explain", run.info.run_id)
    assert missing.exit_code == 2 and "has no logged explanation" in missing.output

    computed = invoke(store, "explain", run.info.run_id, "--data", str(data))
    assert computed.exit_code == 0, computed.output
    assert "exact" in computed.output and "(cached artifact)" not in computed.output
    explanation, background = stored_explanation(store.client(), run.info.run_id)
    assert explanation.features == columns and explanation.values.shape == (40, 4)
    assert explanation.additivity_errors.max() <= 1e-9
    assert json.loads(json.dumps(explanation.metadata))["evaluator"] == "raw"  # not an mlscope pipeline
    cached = invoke(store, "explain", run.info.run_id)
    assert cached.exit_code == 0 and "(cached artifact)" in cached.output
