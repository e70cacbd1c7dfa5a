"""`mlscope up`: the tracking server, the dashboard and the API as child processes, as a user runs it.

Bad input is refused before anything starts; a component that does not come up ends the command with
its log tail and nothing left running; on PostgreSQL (marker `postgres`) the whole stack comes up,
trains once, answers over HTTP, stops cleanly on SIGTERM and reports a child that dies."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mlscope.cli import app
from tests import postgres
from tests.integration.test_serve import THIRD_CLASS_MAN
from tests.live import free_port

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

    def __init__(self, folder: Path, database: str, artifacts: Path, *args: str) -> None:
        self.folder = folder
        self.ports = {"mlflow": free_port(), "dashboard": free_port(), "api": free_port()}
        self.output = folder / "up.out"
        env = {key: value for key, value in os.environ.items() if key not in STORE_VARIABLES}
        env.update({"MLSCOPE_USER": "ops", "COLUMNS": "200"})
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


@pytest.mark.postgres
@pytest.mark.slow
def test_up_serves_the_stack_and_stops_it_cleanly(database: str, artifacts: Path, tmp_path: Path) -> None:
    up = Up(tmp_path, database, artifacts)
    try:
        up.wait_healthy()
        output = up.text()
        assert "Training 4 experiment(s)" in output and "Alias production → version" in output
        assert "View run" not in output  # MLflow's per-run URL lines stay out of the progress display
        production = re.search(r"Alias production → version (\d+)", output).group(1)

        experiments = httpx.get(f"{up.url('dashboard')}/api/experiments", timeout=30).json()["experiments"]
        titanic = next(e for e in experiments if e["name"] == "titanic")
        assert titanic["runs"] == 4 and titanic["best_value"] > 0.8
        deadline = time.monotonic() + 60
        while (ready := httpx.get(f"{up.url('api')}/ready", timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.5)
        assert ready.json()["model"] == {"name": "titanic-survival", "version": production}
        answer = httpx.post(f"{up.url('api')}/predict", json=THIRD_CLASS_MAN, timeout=30)
        assert answer.status_code == 200 and 0 <= answer.json()["probability"] < 0.5, answer.text
        mlflow = httpx.get(f"{up.url('mlflow')}/api/2.0/mlflow/registered-models/get",
                           params={"name": "titanic-survival"}, timeout=30).json()["registered_model"]
        assert {a["alias"]: a["version"] for a in mlflow["aliases"]}["production"] == production
        assert len(up.children()) >= 3

        up.process.send_signal(signal.SIGTERM)
        assert up.finish() == 0, up.text()
        assert "Stopped prediction API, dashboard, MLflow tracking server." in up.text()
        assert up.children() == []
        for name in ("mlflow", "dashboard", "api"):
            assert (tmp_path / "logs" / f"{name}.log").stat().st_size > 0, name
    finally:
        up.finish(5)


@pytest.mark.postgres
@pytest.mark.slow
def test_up_on_a_trained_store_skips_training_and_reports_a_dying_child(database: str, artifacts: Path,
                                                                     tmp_path: Path) -> None:
    """Runs after the test above (same database): no new training; the API with two workers; a killed
    dashboard ends `up` with status 1, its log tail, and the other servers (every API worker) stopped."""
    if not postgres_has_runs(database):
        pytest.skip("needs the trained database of test_up_serves_the_stack_and_stops_it_cleanly")
    up = Up(tmp_path, database, artifacts, "--api-workers", "2")
    try:
        up.wait_healthy()
        assert "already has 4 run(s); skipping training" in up.text()
        deadline = time.monotonic() + 60
        while (ready := httpx.get(f"{up.url('api')}/ready", timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.5)
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
