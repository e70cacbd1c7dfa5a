"""`mlscope monitor` on a real MLflow store with the Titanic models trained by the CLI, over a prediction
log in the brief's Parquet layout holding real model outputs: a drifted feature is flagged and named, an
undrifted one stays ok, live metrics equal task.score on the rows joined with their feedback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from mlscope import task as tasks
from mlscope.cli import app
from mlscope.data.loader import load_titanic
from mlscope.monitoring import layout
from mlscope.monitoring.report import ProductionReport, production_report
from tests.conftest import Store, copy_of, mlflow_state_kept
from tests.integration.test_serve import registered_model

pytestmark = pytest.mark.slow

MODEL = "titanic-survival"
FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
NUMERIC = {"Pclass", "Age", "SibSp", "Parch", "Fare"}


def log_rows(folder: Path, version: str, rows: pd.DataFrame, outputs: np.ndarray, times: list[datetime],
             rng: np.random.Generator, batch: bool = False) -> list[str]:
    """Write `rows` (raw features) with the model's `outputs` as one prediction part file; the request ids."""
    ms = [int(t.timestamp() * 1000) for t in times]
    if batch:
        batch_id = layout.new_request_id(ms[0])
        ids = [layout.row_request_id(batch_id, i) for i in range(len(rows))]
    else:
        ids = [f"{m:012x}{int(rng.integers(0, 1 << 24)):06x}" for m in ms]
    columns: dict[str, Any] = {
        layout.REQUEST_ID: pa.array(ids, pa.string()), layout.TS: pa.array(ms, pa.int64()).cast(layout.TIMESTAMP),
        layout.MODEL_NAME: pa.array([MODEL] * len(rows)), layout.MODEL_VERSION: pa.array([version] * len(rows)),
        layout.ALIAS: pa.array(["production"] * len(rows)),
        layout.LATENCY_MS: pa.array(rng.gamma(2.0, 2.0, len(rows)) if not batch else np.full(len(rows), 9.0)),
        **layout.OUTPUT_COLUMNS["binary"](outputs, ("0", "1"))}
    for feature in FEATURES:
        columns[f"{layout.INPUT_PREFIX}{feature}"] = layout.input_column(rows[feature].to_numpy(), feature in NUMERIC)
    layout.write_part(folder, layout.PREDICTIONS, MODEL, times[0].date(), pa.table(columns))
    return ids


def log_feedback(folder: Path, pairs: list[tuple[str, str]], at: datetime) -> None:
    stamps = pa.array([int(at.timestamp() * 1000)] * len(pairs), pa.int64()).cast(layout.TIMESTAMP)
    table = pa.table({layout.REQUEST_ID: [p[0] for p in pairs], layout.ACTUAL: [p[1] for p in pairs],
                      layout.TS: stamps})
    layout.write_part(folder, layout.FEEDBACK, MODEL, at.date(), table)


def _typed(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows[FEATURES].copy()
    for feature in NUMERIC:
        rows[feature] = rows[feature].astype("float64")
    return rows


@pytest.fixture(scope="module")
def logged(trained, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the trained store and a prediction log of the last hour: 1,200 passengers answered by the
    production version (v3) with Age drifted (+25 years) and the rest as in the data, 80% labelled, plus 50
    undrifted rows of version 1."""
    store, _ = trained
    root = tmp_path_factory.mktemp("monitored")
    own = copy_of(store, root / "store")
    folder = root / "monitoring"
    rng = np.random.default_rng(7)
    titanic = load_titanic().frame
    now = datetime.now(UTC)
    with mlflow_state_kept():
        production, first = registered_model(own, "3"), registered_model(own, "1")
    picks = rng.integers(0, len(titanic), 1200)
    rows = _typed(titanic.iloc[picks])
    rows["Age"] = rows["Age"] + 25.0
    truth = titanic["Survived"].iloc[picks].astype(int).astype(str).to_numpy()
    outputs = production.predict_proba(rows)[:, 1]
    times = [now - timedelta(minutes=50) + timedelta(seconds=2 * i) for i in range(1200)]
    ids = log_rows(folder, "3", rows.iloc[:1000], outputs[:1000], times[:1000], rng)
    ids += log_rows(folder, "3", rows.iloc[1000:], outputs[1000:], times[1000:], rng, batch=True)
    labelled = rng.random(1200) < 0.8
    log_feedback(folder, [(i, t) for i, t, keep in zip(ids, truth, labelled, strict=True) if keep],
                 now - timedelta(minutes=5))
    old = _typed(titanic.iloc[rng.integers(0, len(titanic), 50)])
    log_rows(folder, "1", old, first.predict_proba(old)[:, 1], [now - timedelta(minutes=55)] * 50, rng)
    expected = tasks.BINARY.score(truth[labelled], np.column_stack([1 - outputs[labelled], outputs[labelled]]),
                                  ["0", "1"])
    return {"store": own, "folder": folder, "expected": expected, "labelled": int(labelled.sum())}


def _env(logged: dict[str, Any]) -> dict[str, str]:
    return {**logged["store"].env, "MLSCOPE_MONITOR_DIR": str(logged["folder"])}


def _monitor(logged: dict[str, Any], *args: str) -> Any:
    with mlflow_state_kept():
        return CliRunner().invoke(app, ["monitor", MODEL, *args], env=_env(logged), catch_exceptions=False)


def test_monitor_json_flags_the_drifted_feature_and_scores_the_labelled_rows(logged: dict[str, Any]) -> None:
    result = _monitor(logged, "--window", "2h", "--json")
    assert result.exit_code == 0, result.output
    report = ProductionReport.model_validate_json(result.stdout)
    assert report.model == MODEL and report.window == "2h" and report.task == "binary"
    assert report.served is not None and report.served.version == "3" and report.served.alias == "production"
    assert report.traffic.predictions == 1250 and report.traffic.requests == 1000 + 1 + 50
    assert [v.version for v in report.versions] == ["3", "1"]
    v3 = report.versions[0]
    assert v3.predictions == 1200 and v3.labelled == logged["labelled"] and v3.reference_rows
    live = {m.name: m for m in v3.live_metrics}
    assert set(live) == set(tasks.BINARY.metric_names)
    for name, value in logged["expected"].items():
        assert live[name].value == pytest.approx(value, abs=1e-12), name
        assert live[name].low <= live[name].value <= live[name].high
        assert live[name].test_value is not None
    assert report.versions[1].labelled == 0 and report.versions[1].live_metrics == []

    drift = report.drift
    assert drift is not None and drift.version == "3" and drift.rows == 1200
    features = {f.feature: f for f in drift.features}
    assert set(features) == set(FEATURES)
    assert features["Age"].status == "alert" and features["Age"].test == "ks" and features["Age"].p_value < 1e-9
    for steady in ("Pclass", "Sex", "Fare", "SibSp", "Parch", "Embarked"):
        assert features[steady].status == "ok", features[steady]
    assert features["Sex"].test == "chi2" and features["Sex"].kind == "categorical"
    assert report.status == "alert"
    assert drift.residuals is None  # a classifier has no residuals: nothing is missing, no problem line
    assert not [problem for problem in report.problems if "residual" in problem]

    shift = report.explanation_drift
    assert shift is not None and shift.problem is None and shift.version == "3"
    assert shift.rows == 200 and shift.exact is True
    age = next(f for f in shift.features if f.feature == "Age")
    assert age.ratio == pytest.approx(age.live / age.reference) and age.words.startswith("Age matters")
    assert shift.features[0].feature == "Age"  # the largest shift comes first
    assert json.loads(result.stdout)["generated_at"]


def test_monitor_table_names_the_drift(logged: dict[str, Any]) -> None:
    result = _monitor(logged, "--window", "2h")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "titanic-survival" in out and "version 3 @production" in out and "status alert" in out
    assert "1250 prediction(s) from 1051 request(s)" in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 8}
    assert "alert" in rows["Age"] and "ok" in rows["Fare"] and "alert" not in rows["Fare"]
    assert "Drift flagged: Age (alert)" in out
    assert "Age matters" in out and "roc_auc" in out


def test_monitor_window_and_model_errors_are_one_line(logged: dict[str, Any]) -> None:
    for args, code, needle in ((["--window", "soon"], 2, "window 'soon' is not a duration"),
                               (["--window", "0h"], 2, "must be longer than 0")):
        result = _monitor(logged, *args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == code and len(lines) == 1 and needle in lines[0], result.output
    with mlflow_state_kept():
        result = CliRunner().invoke(app, ["monitor", "no-such-model"], env=_env(logged), catch_exceptions=False)
    assert result.exit_code == 1 and result.output.strip() == "error: registered model 'no-such-model' not found"


def test_an_empty_window_is_no_data_with_the_reason(logged: dict[str, Any]) -> None:
    store: Store = logged["store"]
    settings = store.settings(monitor_dir=logged["folder"])
    with mlflow_state_kept():
        report = production_report(settings, store.client(), MODEL, "30m",
                                   now=datetime.now(UTC) - timedelta(days=3))
    assert report.status == "no_data" and report.traffic.predictions == 0 and report.versions == []
    assert report.drift is None and report.explanation_drift is None
    assert report.problems == ["no predictions logged in this window"] and report.task == "binary"
    starts = [b.start for b in report.traffic.buckets]  # one-minute buckets covering the window
    assert starts[0] <= report.since < starts[0] + timedelta(minutes=1) and starts[-1] < report.until
    assert all(b - a == timedelta(minutes=1) for a, b in zip(starts, starts[1:])) and len(starts) in (30, 31)


def test_a_version_trained_elsewhere_without_reference_says_why(logged: dict[str, Any], tmp_path: Path) -> None:
    """A model logged by plain MLflow (no reference, no explanation): live metrics still come from its
    labelled predictions; drift and explanation drift are null with the reasons, status no_data."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    store: Store = logged["store"]
    titanic = load_titanic().frame
    numeric = ["Pclass", "SibSp", "Parch", "Fare"]
    X, y = titanic[numeric].astype(float), titanic["Survived"]
    model = LogisticRegression(max_iter=500).fit(X, y)
    with mlflow_state_kept():
        mlflow.set_tracking_uri(store.uri)
        mlflow.set_registry_uri(store.uri)
        mlflow.set_experiment(experiment_id=store.experiment("elsewhere"))
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(model, name="model", input_example=X.head(2))
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "plain-model").version
        store.client().set_registered_model_alias("plain-model", "production", version)
    folder = tmp_path / "monitoring"
    rng = np.random.default_rng(1)
    now = datetime.now(UTC)
    picks = rng.integers(0, len(titanic), 300)
    rows = X.iloc[picks]
    outputs = model.predict_proba(rows)[:, 1]
    ms = [int((now - timedelta(minutes=20)).timestamp() * 1000) + i for i in range(300)]
    ids = [layout.new_request_id(m) for m in ms]
    columns: dict[str, Any] = {
        layout.REQUEST_ID: ids, layout.TS: pa.array(ms, pa.int64()).cast(layout.TIMESTAMP),
        layout.MODEL_NAME: ["plain-model"] * 300, layout.MODEL_VERSION: [str(version)] * 300,
        layout.ALIAS: ["production"] * 300, layout.LATENCY_MS: np.ones(300),
        **layout.OUTPUT_COLUMNS["binary"](outputs, ("0", "1")),
        **{f"{layout.INPUT_PREFIX}{f}": layout.input_column(rows[f].to_numpy(), True) for f in numeric}}
    layout.write_part(folder, layout.PREDICTIONS, "plain-model", now.date(), pa.table(columns))
    truth = y.iloc[picks].astype(str).tolist()
    layout.write_part(folder, layout.FEEDBACK, "plain-model", now.date(), pa.table({
        layout.REQUEST_ID: ids, layout.ACTUAL: truth,
        layout.TS: pa.array([ms[-1] + 10] * 300, pa.int64()).cast(layout.TIMESTAMP)}))
    with mlflow_state_kept():
        report = production_report(store.settings(monitor_dir=folder), store.client(), "plain-model", "1h")
    assert report.status == "no_data" and report.drift is None and report.task == "binary"
    assert report.versions[0].reference_rows is None
    assert report.versions[0].reference_problem.startswith(f"no reference for version {version}: run ")
    assert run.info.run_id in report.versions[0].reference_problem  # the reason is drift16's NoReference message
    assert report.explanation_drift.features == [] and "logged no explanation" in report.explanation_drift.problem
    assert any(p.startswith(f"explanation drift of version {version}:") for p in report.problems)
    live = {m.name: m.value for m in report.versions[0].live_metrics}
    expected = tasks.BINARY.score(np.array(truth, dtype=object), np.column_stack([1 - outputs, outputs]), ["0", "1"])
    assert live == pytest.approx(expected)
