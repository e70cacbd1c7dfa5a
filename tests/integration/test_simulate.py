"""`mlscope simulate` against a real running prediction API (uvicorn on a free port, the production
Titanic model of a real store): the requests and the delayed feedback it sends end up in the prediction
log and the feedback log, and --drift sends older, mostly third-class passengers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mlscope.cli import app
from mlscope.data.loader import load_titanic
from mlscope.monitoring import store as log_store
from mlscope.serving.app import build_api
from tests.conftest import Store, mlflow_state_kept
from tests.live import free_port, live_app

pytestmark = pytest.mark.slow

MODEL = "titanic-survival"


@pytest.fixture
def own_store(trained, tmp_path: Path) -> Store:
    store, _ = trained
    copy = Store(tmp_path)
    shutil.copy(store.root / "mlflow.db", copy.root / "mlflow.db")
    return copy


def _simulate(store: Store, monitor_dir: Path, *args: str) -> Any:
    env = {**store.env, "MLSCOPE_MONITOR_DIR": str(monitor_dir)}
    with mlflow_state_kept():
        return CliRunner().invoke(app, ["simulate", *args], env=env, catch_exceptions=False)


def test_simulate_sends_drifted_traffic_and_feedback_that_the_log_then_holds(own_store: Store, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    monitor_dir = tmp_path / "monitoring"
    started = datetime.now(UTC) - timedelta(minutes=1)
    settings = own_store.settings(monitor_dir=monitor_dir, log_flush_seconds=0.2)
    with mlflow_state_kept(), live_app(build_api(settings), ready_path="/ready") as url:
        result = _simulate(own_store, monitor_dir, "--url", url, "--requests", "300", "--drift", "--clients", "3",
                           "--feedback-delay", "0.5", "--label-share", "0.5", "--seed", "3")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Sending 300 row(s) from the shipped titanic data" in out and "version 3" in out
    assert "75% third class" in out and "25 years older" not in out
    predictions = log_store.predictions(monitor_dir, MODEL, started, datetime.now(UTC) + timedelta(minutes=1))
    feedback = log_store.feedback(monitor_dir, MODEL)
    assert predictions.num_rows == 300 and set(predictions["model_version"].to_pylist()) == {"3"}
    assert 110 <= feedback.num_rows <= 190  # about half of the 300 answers, by a seeded draw
    assert set(feedback["request_id"].to_pylist()) <= set(predictions["request_id"].to_pylist())
    assert set(feedback["actual"].to_pylist()) <= {"0", "1"}
    summary = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines()
               if line.count("│") == 3}
    assert summary["rows answered"] == "300" and summary["failed requests"] == "0"
    assert summary["feedback sent"] == str(feedback.num_rows) and summary["feedback rejected"] == "0"

    titanic = load_titanic().frame
    classes = np.asarray(predictions["in.Pclass"].to_pylist(), dtype=float)
    ages = np.asarray(predictions["in.Age"].to_pylist(), dtype=float)
    assert np.mean(classes == 3) > 0.65 > np.mean(titanic["Pclass"] == 3)
    assert np.nanmean(ages) > titanic["Age"].mean() + 10  # 15 years older, and mostly third class (younger)

    labelled = log_store.labelled(monitor_dir, MODEL, started, datetime.now(UTC) + timedelta(minutes=1))
    assert labelled.num_rows == feedback.num_rows  # every feedback joins its prediction


def test_simulate_batches_without_drift(own_store: Store, tmp_path: Path) -> None:
    monitor_dir = tmp_path / "monitoring"
    settings = own_store.settings(monitor_dir=monitor_dir, log_flush_seconds=0.2)
    with mlflow_state_kept(), live_app(build_api(settings), ready_path="/ready") as url:
        result = _simulate(own_store, monitor_dir, "--url", url, "--requests", "100", "--batch-size", "25",
                           "--feedback-delay", "0.5", "--label-share", "1")
    assert result.exit_code == 0, result.output
    predictions = log_store.feedback(monitor_dir, MODEL)
    assert predictions.num_rows == 100
    assert all("-" in request_id for request_id in predictions["request_id"].to_pylist())  # batch rows' ids


def test_simulate_without_an_api_is_one_line(own_store: Store, tmp_path: Path) -> None:
    result = _simulate(own_store, tmp_path, "--url", f"http://127.0.0.1:{free_port()}", "--requests", "5")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: cannot reach the prediction API")
