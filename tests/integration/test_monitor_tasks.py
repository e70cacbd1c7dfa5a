"""The production report follows the served model's task: a regressor (diabetes, Ridge) and a
multiclass classifier (wine, logistic regression) trained by the CLI into real stores, prediction logs
of their real outputs with one feature shifted: live metrics equal task.score on the joined rows
(regression's error metrics, multiclass' per-class ones), the shifted feature is flagged, explanation
drift is computed (per class and summed for the multiclass model)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlscope import task as tasks
from mlscope.data.loader import load_demo
from mlscope.monitoring import layout
from mlscope.monitoring.report import production_report
from tests.conftest import Store, invoke, mlflow_state_kept

pytestmark = pytest.mark.slow

CASES = {"diabetes": ("diabetes-progression", "ridge", "bmi"),
         "wine": ("wine-cultivar", "logistic-regression", "proline")}


def _model(store: Store, name: str) -> Any:
    import mlflow.sklearn

    from mlscope.tracking.client import allow_model_loading, bind_fluent_api

    settings = store.settings()
    bind_fluent_api(settings)
    with allow_model_loading(settings):
        return mlflow.sklearn.load_model(f"models:/{name}@production")


def _log(folder: Path, name: str, task: tasks.Task, rows: Any, model: Any, truth: list[str], now: datetime) -> tuple:
    outputs, classes = task.outputs(model, rows)
    labels = tuple(str(c) for c in classes)
    ms = [int((now - timedelta(minutes=30)).timestamp() * 1000) + 1000 * i for i in range(len(rows))]
    ids = [layout.new_request_id(m) for m in ms]
    columns: dict[str, Any] = {
        layout.REQUEST_ID: ids, layout.TS: pa.array(ms, pa.int64()).cast(layout.TIMESTAMP),
        layout.MODEL_NAME: [name] * len(rows), layout.MODEL_VERSION: ["1"] * len(rows),
        layout.ALIAS: ["production"] * len(rows), layout.LATENCY_MS: np.full(len(rows), 2.0),
        **layout.OUTPUT_COLUMNS[task.name](outputs, labels)}
    for feature in rows.columns:
        columns[f"{layout.INPUT_PREFIX}{feature}"] = layout.input_column(rows[feature].to_numpy(), True)
    layout.write_part(folder, layout.PREDICTIONS, name, now.date(), pa.table(columns))
    feedback = pa.table({layout.REQUEST_ID: ids, layout.ACTUAL: truth,
                         layout.TS: pa.array([ms[-1] + 1000] * len(ids), pa.int64()).cast(layout.TIMESTAMP)})
    layout.write_part(folder, layout.FEEDBACK, name, now.date(), feedback)
    return outputs, labels


@pytest.mark.parametrize("dataset", sorted(CASES))
def test_report_follows_the_task(dataset: str, tmp_path: Path) -> None:
    name, run, shifted = CASES[dataset]
    store = Store(tmp_path)
    trained = invoke(store, "train", "--dataset", dataset, "--only", run, "--promote")
    assert trained.exit_code == 0, trained.output
    data = load_demo(dataset)
    rng = np.random.default_rng(11)
    picks = rng.integers(0, len(data.frame), 600)
    rows = data.X.iloc[picks].reset_index(drop=True).astype("float64")
    rows[shifted] = rows[shifted] + 1.5 * data.X[shifted].std()
    truth = [repr(float(v)) if not data.task.classification else str(v) for v in data.y.iloc[picks]]
    folder, now = tmp_path / "monitoring", datetime.now(UTC)
    with mlflow_state_kept():
        outputs, labels = _log(folder, name, data.task, rows, _model(store, name), truth, now)
        report = production_report(store.settings(monitor_dir=folder), store.client(), name, "1h")
    assert report.task == data.task.name and report.served.version == "1"
    version = report.versions[0]
    assert version.predictions == version.labelled == 600 and version.reference_problem is None
    truth_array = np.array([float(t) for t in truth]) if not data.task.classification else np.array(truth, dtype=object)
    expected = data.task.score(truth_array, outputs, labels)
    live = {m.name: m for m in version.live_metrics}
    assert set(live) == set(expected)
    for metric, value in expected.items():
        assert live[metric].value == pytest.approx(value, abs=1e-9), metric
        assert live[metric].test_value is not None or metric.startswith(("precision_class_", "recall_class_"))
    if data.task is tasks.MULTICLASS:
        assert {"recall_class_class_0", "precision_class_class_2"} <= set(live)
    features = {f.feature: f for f in report.drift.features}
    assert features[shifted].status == "alert", features[shifted]
    assert sum(f.status != "ok" for f in features.values()) <= 2, [f for f in features.values() if f.status != "ok"]
    assert report.status == "alert"
    shift = report.explanation_drift
    assert shift.problem is None and shift.rows == 200 and shift.exact is True
    assert {f.feature for f in shift.features} == set(data.features)
    moved = next(f for f in shift.features if f.feature == shifted)
    assert moved.ratio == pytest.approx(moved.live / moved.reference)


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Any]:
    """The diabetes Ridge regressor trained by the CLI and promoted, and its fitted model."""
    store = Store(tmp_path_factory.mktemp("residuals"))
    trained = invoke(store, "train", "--dataset", "diabetes", "--only", "ridge", "--promote")
    assert trained.exit_code == 0, trained.output
    with mlflow_state_kept():
        return store, _model(store, CASES["diabetes"][0])


def _residual_report(store: Store, model: Any, folder: Path, shift: float) -> Any:
    """A window of 600 undrifted diabetes rows whose feedback is the truth plus `shift`."""
    name = CASES["diabetes"][0]
    data = load_demo("diabetes")
    picks = np.random.default_rng(3).integers(0, len(data.frame), 600)
    rows = data.X.iloc[picks].reset_index(drop=True).astype("float64")
    truth = [repr(float(v) + shift) for v in data.y.iloc[picks]]
    now = datetime.now(UTC)
    with mlflow_state_kept():
        outputs, _ = _log(folder, name, data.task, rows, model, truth, now)
        report = production_report(store.settings(monitor_dir=folder), store.client(), name, "1h")
    residuals = np.array([float(t) for t in truth]) - outputs
    return report, residuals


def test_a_regressors_residuals_against_the_truth_do_not_drift(diabetes: tuple[Store, Any], tmp_path: Path) -> None:
    from mlscope.monitoring import drift as drift_stats
    from mlscope.monitoring.residuals import test_split_residuals

    store, model = diabetes
    report, live = _residual_report(store, model, tmp_path / "monitoring", 0.0)
    residual = report.drift.residuals
    assert residual is not None and residual.feature == "residual" and residual.kind == "numeric"
    assert residual.test == "ks" and residual.status == "ok", residual
    assert not any(p.startswith("residual drift") for p in report.problems), report.problems
    run_id = report.served.run_id
    with mlflow_state_kept():  # the test residuals: the run's logged predictions.csv, y_true − prediction
        logged = pd.read_csv(store.client().download_artifacts(run_id, "predictions.csv", str(tmp_path)))
    reference = (logged["y_true"] - logged["prediction"]).to_numpy()
    cached = tmp_path / "monitoring" / "residuals" / f"{run_id}.npy"  # read once, then from the cache
    assert np.array_equal(np.load(cached), reference)
    with mlflow_state_kept():
        assert np.array_equal(test_split_residuals(None, run_id, tasks.REGRESSION, cached.parent), reference)
    expected = drift_stats.numeric_drift("residual", reference, live)
    assert residual.psi == pytest.approx(expected.psi) and residual.p_value == pytest.approx(expected.p_value)
    assert residual.wasserstein == pytest.approx(expected.wasserstein)


def test_a_shifted_truth_flags_the_residuals_in_the_report_and_monitor(diabetes: tuple[Store, Any],
                                                                      tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlscope.cli import app

    store, model = diabetes
    folder = tmp_path / "monitoring"
    report, _ = _residual_report(store, model, folder, 150.0)  # the truth moved: about 2 standard deviations of y
    residual = report.drift.residuals
    assert residual.status == "alert" and residual.p_value < 1e-9, residual
    assert report.drift.prediction.status == "ok"  # the inputs and outputs look as at training: only residuals move
    assert report.status == "alert"
    with mlflow_state_kept():
        result = CliRunner().invoke(app, ["monitor", CASES["diabetes"][0], "--window", "1h"],
                                    env={**store.env, "MLSCOPE_MONITOR_DIR": str(folder)}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 8}
    assert "alert" in rows["residual"] and "ok" in rows["prediction"]
    names = list(rows)
    assert names.index("residual") == names.index("prediction") + 1
    assert "Drift flagged: residual (alert)" in result.output


def test_residuals_without_labels_or_test_predictions_say_why(diabetes: tuple[Store, Any], tmp_path: Path) -> None:
    from mlscope.monitoring.residuals import residual_drift

    store, _ = diabetes
    labelled = pd.DataFrame({"actual": ["1.5", "2"], "output": [1.0, 2.5]})
    with mlflow_state_kept():
        client = store.client()
        none, why = residual_drift(client, tasks.REGRESSION, "1", "0" * 32, labelled.iloc[:0], tmp_path)
        assert none is None and why.startswith("residual drift of version 1: no labelled predictions")
        none, why = residual_drift(client, tasks.BINARY, "1", "0" * 32, labelled, tmp_path)
        assert none is None and why is None
        none, why = residual_drift(client, tasks.REGRESSION, "1", "0" * 32, labelled, tmp_path)
        assert none is None and why == f"residual drift of version 1: run '{'0' * 32}' not found"
