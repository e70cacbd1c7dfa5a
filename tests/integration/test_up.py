"""`mlscope up`: the tracking server, the dashboard and the API as child processes, as a user runs it.

Bad input is refused before anything starts; a component that does not come up ends the command with
its log tail and nothing left running; on PostgreSQL (marker `postgres`) the whole stack comes up,
trains once, answers over HTTP, logs its predictions and feedback where the dashboard, `mlscope monitor`
and the API's /metrics read them, stops cleanly on SIGTERM and reports a child that dies."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlscope.cli import app
from mlscope.data.loader import titanic_path
from tests import postgres
from tests.integration.test_serve import THIRD_CLASS_MAN
from tests.live import free_port

MODEL = "titanic-survival"
API_FIELDS = {"Pclass": "pclass", "Sex": "sex", "Age": "age", "SibSp": "sibsp", "Parch": "parch", "Fare": "fare",
              "Embarked": "embarked"}
STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLSCOPE_TRACKING_URI", "MLSCOPE_REGISTRY_URI",
                   "MLSCOPE_BACKEND_STORE_URI")


def run_up(tmp_path: Path, *args: str) -> object:
    ports = ["--mlflow-port", str(free_port()), "--port", str(free_port()), "--api-port", str(free_port())]
    return CliRunner().invoke(app, ["up", *ports, "--log-dir", str(tmp_path / "logs"),
                                    "--artifacts-destination", str(tmp_path / "artifacts"), *args],
                              env={key: None for key in STORE_VARIABLES}, catch_exceptions=False)


def error_line(result: object) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert lines, result.output
    return lines[0]


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (the children's ports are unique per test)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def test_up_needs_a_database(tmp_path: Path) -> None:
    result = run_up(tmp_path)
    assert result.exit_code == 2
    assert "--backend-store-uri postgresql://" in error_line(result)
    assert "Traceback" not in result.output and not (tmp_path / "logs").exists()


@pytest.mark.parametrize("uri, expected", [
    ("http://127.0.0.1:5000", "must be a postgresql, mysql, mssql, sqlite database, not 'http'"),
    ("not a uri", "is not a database URI: 'not a uri'"),
])
def test_up_refuses_what_is_not_a_database_uri(tmp_path: Path, uri: str, expected: str) -> None:
    result = run_up(tmp_path, "--backend-store-uri", uri)
    assert result.exit_code == 2
    assert expected in error_line(result)
    assert not (tmp_path / "logs").exists()


def test_up_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_up(tmp_path, "--backend-store-uri", "postgresql://postgres@127.0.0.1:5432/none",
                        "--api-port", str(port))
    assert result.exit_code == 2
    assert error_line(result) == f"error: port {port} (--api-port) is already in use on 127.0.0.1"
    assert not (tmp_path / "logs").exists()


def test_up_refuses_a_database_it_cannot_reach(tmp_path: Path) -> None:
    """Nothing listens on the database port: one line in seconds, not a server retrying for minutes."""
    closed = free_port()
    started = time.monotonic()
    result = run_up(tmp_path, "--backend-store-uri", f"postgresql://postgres:secret@127.0.0.1:{closed}/nothing")
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert line.startswith(f"error: cannot connect to postgresql://postgres:***@127.0.0.1:{closed}/nothing: "), line
    assert "Connection refused" in line and "secret" not in result.output
    assert time.monotonic() - started < 30
    assert not (tmp_path / "logs").exists()


def test_up_reports_a_server_that_is_not_healthy_in_time(tmp_path: Path) -> None:
    """A component that misses --ready-timeout ends `up` with its log tail; nothing is left running."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    handler = signal.getsignal(signal.SIGTERM)
    result = run_up(tmp_path, "--backend-store-uri", store, "--ready-timeout", "1")
    assert signal.getsignal(signal.SIGTERM) is handler  # `up` restores the SIGTERM handler it installs
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert re.match(r"error: MLflow tracking server did not answer http://127\.0\.0\.1:\d+/health within 1 s "
                    r"\(log: .*mlflow\.log\)$", line), line
    log = tmp_path / "logs" / "mlflow.log"
    assert f"--- last lines of {log} ---" in result.output or f"--- {log} is empty ---" in result.output
    assert "Stopped MLflow tracking server." in result.output
    assert "dashboard" not in result.output  # never started
    assert processes_mentioning(store) == []


# --- the whole stack on PostgreSQL -----------------------------------------------------------------

@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with postgres.database_or_skip("mlscope_up") as uri:
        yield postgres.plain(uri)  # what a user types


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The artifact folder that goes with `database` (both `up` runs serve the same store)."""
    return tmp_path_factory.mktemp("up-artifacts")


class Up:
    """`mlscope up` as a real subprocess, its output in a file."""

    def __init__(self, folder: Path, database: str, artifacts: Path, *args: str, **env_extra: str) -> None:
        self.folder = folder
        self.ports = {"mlflow": free_port(), "dashboard": free_port(), "api": free_port()}
        self.output = folder / "up.out"
        env = {key: value for key, value in os.environ.items() if key not in STORE_VARIABLES}
        env.update({"MLSCOPE_USER": "ops", "COLUMNS": "200", **env_extra})
        argv = [sys.executable, "-m", "mlscope", "up", "--backend-store-uri", database,
                "--mlflow-port", str(self.ports["mlflow"]), "--port", str(self.ports["dashboard"]),
                "--api-port", str(self.ports["api"]), "--log-dir", str(folder / "logs"),
                "--artifacts-destination", str(artifacts), *args]
        with self.output.open("w") as out:
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=folder)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_healthy(self, seconds: float = 300) -> None:
        deadline = time.monotonic() + seconds
        while "everything is healthy" not in self.text():
            assert self.process.poll() is None, f"mlscope up exited {self.process.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"mlscope up not healthy after {seconds:.0f} s:\n{self.text()}"
            time.sleep(0.5)

    def wait_ready(self, seconds: float = 60) -> httpx.Response:
        """The API's /ready once it answers 200 (it loads the promoted version by itself)."""
        deadline = time.monotonic() + seconds
        while (ready := httpx.get(f"{self.url('api')}/ready", timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.5)
        return ready

    def pid_of(self, component: str) -> int:
        match = re.search(rf"│ {component}\s+│ http://\S+\s+│ (\d+)", self.text())
        assert match, self.text()
        return int(match.group(1))

    def url(self, component: str) -> str:
        return f"http://127.0.0.1:{self.ports[component]}"

    def children(self) -> list[int]:
        return [pid for port in self.ports.values() for pid in processes_mentioning(f"--port {port}")]

    def finish(self, seconds: float = 90) -> int:
        try:
            return self.process.wait(timeout=seconds)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            for pid in self.children():
                os.kill(pid, signal.SIGKILL)


MONITOR_DIR = "monitoring"  # the stack's MLSCOPE_MONITOR_DIR, relative to the folder `up` runs in


@pytest.fixture(scope="module")
def stack(database: str, artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """One `mlscope up` on the fresh database (it trains), healthy and serving, for the tests below in
    file order; the last one stops it with SIGTERM."""
    up = Up(tmp_path_factory.mktemp("up-stack"), database, artifacts, MLSCOPE_MONITOR_DIR=MONITOR_DIR)
    try:
        up.wait_healthy()
        up.wait_ready()
        yield up
    finally:  # stopped already unless a test failed before the last one
        if up.process.poll() is None:
            up.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            up.finish(60)  # kills whatever is left either way


@pytest.mark.postgres
@pytest.mark.slow
def test_up_serves_the_stack(stack: Up) -> None:
    up = stack
    output = up.text()
    assert "Training 4 experiment(s)" in output and "Alias production → version" in output
    assert "View run" not in output  # MLflow's per-run URL lines stay out of the progress display
    assert f"prediction log {up.folder / MONITOR_DIR}" in " ".join(output.split())  # the caption may wrap
    production = re.search(r"Alias production → version (\d+)", output).group(1)

    experiments = httpx.get(f"{up.url('dashboard')}/api/experiments", timeout=30).json()["experiments"]
    titanic = next(e for e in experiments if e["name"] == "titanic")
    assert titanic["runs"] == 4 and titanic["best_value"] > 0.8
    assert up.wait_ready().json()["model"] == {"name": "titanic-survival", "version": production}
    answer = httpx.post(f"{up.url('api')}/predict", json=THIRD_CLASS_MAN, timeout=30)
    assert answer.status_code == 200 and 0 <= answer.json()["probability"] < 0.5, answer.text
    mlflow = httpx.get(f"{up.url('mlflow')}/api/2.0/mlflow/registered-models/get",
                       params={"name": "titanic-survival"}, timeout=30).json()["registered_model"]
    assert {a["alias"]: a["version"] for a in mlflow["aliases"]}["production"] == production
    assert len(up.children()) >= 3


def logged(monitor_dir: Path, kind: str, request_ids: set[str], seconds: float = 20) -> pd.DataFrame:
    """The Parquet part files of one kind under the stack's monitor folder, once they hold every one of
    `request_ids` (the API writes them every MLSCOPE_LOG_FLUSH_SECONDS, 1 s)."""
    deadline = time.monotonic() + seconds
    while True:
        parts = sorted((monitor_dir / kind / f"model={MODEL}").glob("date=*/part-*.parquet"))
        table = pd.concat([pd.read_parquet(part) for part in parts]) if parts else pd.DataFrame({"request_id": []})
        if request_ids <= set(table["request_id"]) or time.monotonic() > deadline:
            return table
        time.sleep(0.3)


def without_clock(report: dict[str, Any]) -> dict[str, Any]:
    """A production report without what depends on when it was asked (the window's ends, its time
    buckets); everything computed from the logged rows and the store stays."""
    kept = {key: value for key, value in report.items() if key not in ("since", "until", "generated_at")}
    kept["traffic"] = {key: value for key, value in report["traffic"].items() if key != "buckets"}
    return kept


@pytest.mark.postgres
@pytest.mark.slow
def test_the_stack_logs_predictions_and_feedback_and_reports_their_drift(stack: Up) -> None:
    """Real HTTP to the stack's API on PostgreSQL: every answered row lands as Parquet in the stack's
    MLSCOPE_MONITOR_DIR, feedback is recorded, and the dashboard's production report, `mlscope monitor
    --json` and the API's /metrics all judge the served version against its training reference, which
    they download through the tracking server's artifact proxy."""
    up = stack
    monitor_dir = up.folder / MONITOR_DIR
    served = httpx.get(f"{up.url('api')}/model", timeout=10).json()
    version, run_id = served["version"], served["run_id"]
    passengers = pd.read_csv(titanic_path()).head(40)
    sent: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=up.url("api"), timeout=30) as api:
        for _, row in passengers.iterrows():
            body = {field: (None if pd.isna(row[column]) else row[column].item() if hasattr(row[column], "item")
                            else row[column]) for column, field in API_FIELDS.items()}
            answer = api.post("/predict", json=body)
            assert answer.status_code == 200, answer.text
            answer = answer.json()
            assert answer["model"] == {"name": MODEL, "version": version}
            sent[answer["request_id"]] = {"age": body["age"], "truth": int(row["Survived"]),
                                          "probability": answer["probability"]}
        labelled = list(sent)[:15]
        for request_id in labelled:
            recorded = api.post("/feedback", json={"request_id": request_id, "actual": sent[request_id]["truth"]})
            assert recorded.status_code == 200, recorded.text
            assert recorded.json()["actual"] == str(sent[request_id]["truth"])
        again = api.post("/feedback", json={"request_id": labelled[0], "actual": 1 - sent[labelled[0]]["truth"]})
        assert again.status_code == 409, again.text  # the first truth stays

        # the Parquet files under the stack's monitor folder, as the API child wrote them (with the rows
        # answered by the tests before: written too, since they came earlier)
        predictions = logged(monitor_dir, "predictions", set(sent)).set_index("request_id")
        assert set(sent) <= set(predictions.index) and len(predictions) <= len(sent) + 5
        total = len(predictions)
        assert set(predictions["model_version"]) == {version} and set(predictions["alias"]) == {"production"}
        for request_id, what in sent.items():
            assert predictions.loc[request_id, "output"] == pytest.approx(what["probability"], abs=1e-12)
            age = predictions.loc[request_id, "in.Age"]
            assert (pd.isna(age) and what["age"] is None) or age == what["age"]
        feedback = logged(monitor_dir, "feedback", set(labelled))
        assert sorted(feedback["request_id"]) == sorted(labelled)
        assert {r.request_id: r.actual for r in feedback.itertuples()} == {
            request_id: str(sent[request_id]["truth"]) for request_id in labelled}

        # /metrics: the API downloads the reference through the tracking server's artifact proxy
        metrics = api.get("/metrics")
        assert metrics.status_code == 200
        labels = f'model="{MODEL}",version="{version}"'
        assert f"mlscope_drift_available{{{labels}}} 1.0" in metrics.text, metrics.text
        assert f"mlscope_drift_window_rows{{{labels}}} {float(total)}" in metrics.text

    [on_server] = artifacts_of(up, run_id).glob("monitoring/reference.parquet")
    cached = monitor_dir / "references" / run_id
    assert (cached / "reference.parquet").read_bytes() == on_server.read_bytes()
    shutil.rmtree(cached)  # so the dashboard downloads it through the proxy too

    report = httpx.get(f"{up.url('dashboard')}/api/models/{MODEL}/production", params={"window": "1h"}, timeout=120)
    assert report.status_code == 200, report.text
    report = report.json()
    assert report["served"] == {"version": version, "alias": "production", "run_id": run_id}
    assert report["task"] == "binary" and report["status"] in ("ok", "watch", "alert")
    assert not [problem for problem in report["problems"] if "reference" in problem], report["problems"]
    assert (report["traffic"]["predictions"], report["traffic"]["requests"]) == (total, total)
    by_version = {v["version"]: v for v in report["versions"]}
    assert (by_version[version]["predictions"], by_version[version]["labelled"]) == (total, len(labelled))
    metrics_live = {m["name"]: m for m in by_version[version]["live_metrics"]}
    assert "accuracy" in metrics_live and metrics_live["accuracy"]["test_value"] is not None
    reference_rows = len(pd.read_parquet(on_server))
    assert by_version[version]["reference_rows"] == reference_rows and by_version[version]["reference_problem"] is None
    drift = report["drift"]
    assert (drift["version"], drift["rows"], drift["reference_rows"]) == (version, total, reference_rows)
    assert {f["feature"] for f in drift["features"]} == set(API_FIELDS) and drift["prediction"] is not None
    assert all(f["psi"] is not None and f["p_value"] is not None for f in drift["features"]), drift["features"]
    assert (cached / "reference.parquet").read_bytes() == on_server.read_bytes()

    # `mlscope monitor --json` against the same tracking server and folder says the same
    env = {key: value for key, value in os.environ.items() if key not in STORE_VARIABLES}
    env.update({"MLFLOW_TRACKING_URI": up.url("mlflow"), "MLSCOPE_MONITOR_DIR": str(monitor_dir)})
    monitored = subprocess.run([sys.executable, "-m", "mlscope", "monitor", MODEL, "--window", "1h", "--json"],
                               env=env, cwd=up.folder, capture_output=True, text=True, timeout=120, check=False)
    assert monitored.returncode == 0, monitored.stdout + monitored.stderr
    assert without_clock(json.loads(monitored.stdout)) == without_clock(report)


def artifacts_of(up: Up, run_id: str) -> Path:
    """The run's artifact folder on the tracking server's disk (--artifacts-destination/<experiment>/<run>)."""
    [folder] = Path(up.text().split("artifacts in ")[1].split(")")[0]).glob(f"*/{run_id}/artifacts")
    return folder


@pytest.mark.postgres
@pytest.mark.slow
def test_up_stops_the_stack_cleanly(stack: Up) -> None:
    """Last user of `stack`: SIGTERM stops the three children, newest first, and `up` exits 0."""
    up = stack
    up.process.send_signal(signal.SIGTERM)
    assert up.finish() == 0, up.text()
    assert "Stopped prediction API, dashboard, MLflow tracking server." in up.text()
    assert up.children() == []
    for name in ("mlflow", "dashboard", "api"):
        assert (up.folder / "logs" / f"{name}.log").stat().st_size > 0, name


@pytest.mark.postgres
@pytest.mark.slow
def test_up_on_a_trained_store_skips_training_and_reports_a_dying_child(database: str, artifacts: Path,
                                                                     tmp_path: Path) -> None:
    """Runs after the tests above (same database): no new training; the API with two workers; a killed
    dashboard ends `up` with status 1, its log tail, and the other servers (every API worker) stopped."""
    if not postgres_has_runs(database):
        pytest.skip("needs the trained database of the stack fixture")
    up = Up(tmp_path, database, artifacts, "--api-workers", "2", "--monitor-dir", "watched")
    try:
        up.wait_healthy()
        assert "already has 4 run(s); skipping training" in up.text()
        assert f"prediction log {tmp_path / 'watched'}" in " ".join(up.text().split())
        ready = up.wait_ready()
        assert int(ready.headers["x-mlscope-worker"]) != up.pid_of("prediction API")
        assert len(processes_mentioning(f"--port {up.ports['api']}")) == 3  # the parent and its two workers
        os.kill(up.pid_of("dashboard"), signal.SIGKILL)
        assert up.finish() == 1, up.text()
        output = up.text()
        assert re.search(r"error: dashboard exited with status -9 \(log: .*dashboard\.log\)", output), output
        assert "--- last lines of" in output and "mlscope dashboard on" in output
        assert "Stopped prediction API, dashboard, MLflow tracking server." in output
        assert up.children() == []
    finally:
        up.finish(5)


def postgres_has_runs(database: str) -> bool:
    import psycopg

    with psycopg.connect(database) as conn:
        try:
            return conn.execute("SELECT count(*) FROM runs").fetchone()[0] > 0
        except psycopg.Error:
            return False
