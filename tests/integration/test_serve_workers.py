"""`mlscope serve --workers N` as real processes over real HTTP: several workers on one port, each
answering and hot-swapping on its own, /metrics adding up every worker's counts, a killed worker
replaced, SIGTERM draining all of them and leaving no process and no metrics folder behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from mlscope.cli import app
from tests.conftest import Store, copy_of, invoke
from tests.integration.test_serve import THIRD_CLASS_MAN, expected, registered_model
from tests.live import free_port, wait_for_ok

pytestmark = pytest.mark.slow

PREDICTED = ("mlscope_api_requests_total", (("method", "POST"), ("path", "/predict"), ("status", "200")))
WORKER_HEADER = "x-mlscope-worker"


@pytest.fixture
def own_store(trained, tmp_path: Path) -> Store:
    store, _ = trained
    return copy_of(store, tmp_path / "store")


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Served:
    """A `mlscope serve` process with its URL, log, and the TMPDIR it was given."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    tmpdir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def scrape(self) -> tuple[int, Samples]:
        """One /metrics answer on a new connection: the pid that answered, and its samples."""
        reply = httpx.get(f"{self.url}/metrics", timeout=30)
        assert reply.status_code == 200, reply.text
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(reply.text) for s in family.samples}
        return int(reply.headers[WORKER_HEADER]), samples

    def workers(self) -> dict[int, Samples]:
        """Per live worker pid (from the per-worker gauges of one scrape): its gauge samples."""
        _, samples = self.scrape()
        found: dict[int, Samples] = {}
        for (name, labels), value in samples.items():
            pid = dict(labels).get("pid")
            if pid is not None:
                found.setdefault(int(pid), {})[(name, tuple(kv for kv in labels if kv[0] != "pid"))] = value
        return found

    def wait(self, condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert self.process.poll() is None, f"mlscope serve exited {self.process.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"{what} not seen within {seconds:.0f} s:\n{self.log()}"
            time.sleep(0.1)

    def wait_loaded(self, count: int) -> dict[int, Samples]:
        """Wait until `count` workers have a model loaded; their gauges."""
        self.wait(lambda: sum(g.get(("mlscope_api_model_loaded", ())) == 1 for g in self.workers().values()) == count,
                  f"{count} workers with a model")
        return self.workers()


@contextmanager
def serving(store: Store, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`mlscope serve --port P ARGS` in a subprocess (its own process group, as a terminal would start it)
    with its own TMPDIR; killed if the test leaves it running."""
    port = free_port()
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    log_path = tmp_path / "serve.log"
    full_env = {**os.environ, **store.env, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmpdir), **(env or {})}
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "mlscope", "serve", "--port", str(port), *args],
                                   env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    served = Served(process, f"http://127.0.0.1:{port}", log_path, tmpdir)
    try:
        assert wait_for_ok(f"{served.url}/ready", 120), served.log()
        yield served
    finally:
        if process.poll() is None:
            process.kill()  # its workers get SIGTERM from the kernel (parent-death signal)
            process.wait()


def in_parallel(count: int, threads: int, ask: Callable[[], object]) -> list[object]:
    """`count` calls of `ask` spread over `threads` threads (each call opens its own connection)."""
    results: list[object] = []
    lock = threading.Lock()

    def run(share: int) -> None:
        for _ in range(share):
            result = ask()
            with lock:
                results.append(result)

    workers = [threading.Thread(target=run, args=(count // threads + (i < count % threads),)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def predictions(url: str, count: int) -> list[tuple[int, int, dict[str, object]]]:
    """`count` /predict calls from 8 threads, each on a new connection: (status, worker pid, body)."""
    def ask() -> tuple[int, int, dict[str, object]]:
        reply = httpx.post(f"{url}/predict", json=THIRD_CLASS_MAN, timeout=30)
        return reply.status_code, int(reply.headers[WORKER_HEADER]), reply.json()

    return in_parallel(count, 8, ask)  # type: ignore[return-value]


def until_every_worker_answered(served: Served, workers: set[int], count: int) -> list[tuple[int, int, dict[str, object]]]:
    """Rounds of `count` concurrent predictions until every worker in `workers` has answered one."""
    answers: list[tuple[int, int, dict[str, object]]] = []
    for _ in range(20):
        answers += predictions(served.url, count)
        if {pid for _, pid, _ in answers} >= workers:
            break
    return answers


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_answer_on_one_port_and_metrics_add_up(own_store: Store, tmp_path: Path) -> None:
    with serving(own_store, tmp_path, "--workers", "2") as served:
        workers = set(served.wait_loaded(2))
        answers = until_every_worker_answered(served, workers, 64)
        truth = expected(registered_model(own_store, "3"), [THIRD_CLASS_MAN])[0]
        assert {status for status, _, _ in answers} == {200}
        assert {pid for _, pid, _ in answers} == workers  # both workers answered, nobody else
        assert all(abs(body["probability"] - truth) <= 1e-9 and body["model"]["version"] == "3"
                   for _, _, body in answers)

        # Every scrape, whichever worker answers it, counts every worker's requests: exactly len(answers).
        scrapes = []
        for _ in range(20):
            scrapes += in_parallel(16, 8, served.scrape)
            if {pid for pid, _ in scrapes} == workers:
                break
        assert {pid for pid, _ in scrapes} == workers
        for _, samples in scrapes:
            assert samples[PREDICTED] == len(answers)
            assert samples[("mlscope_api_predicted_rows_total", (("endpoint", "predict"),))] == len(answers)
            assert samples[("mlscope_api_request_seconds_count", (("path", "/predict"),))] == len(answers)

        model = httpx.get(f"{served.url}/model", timeout=30)
        assert model.json()["pid"] == int(model.headers[WORKER_HEADER]) and model.json()["pid"] in workers
        ready = httpx.get(f"{served.url}/ready", timeout=30)
        assert ready.json()["pid"] in workers
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=60) == 0, served.log()
    assert "Traceback" not in served.log()


def test_every_worker_swaps_when_the_alias_moves(own_store: Store, tmp_path: Path) -> None:
    client = own_store.client()
    client.set_registered_model_alias("titanic-survival", "live", "1")
    info = "mlscope_api_model_info"
    labels = (("alias", "live"), ("name", "titanic-survival"))

    with serving(own_store, tmp_path, "--workers", "2", "--alias", "live", "--poll-seconds", "0.2") as served:
        gauges = served.wait_loaded(2)
        assert all(g[(info, (*labels, ("version", "1")))] == 1 for g in gauges.values())

        client.set_registered_model_alias("titanic-survival", "live", "4")
        def swapped(g: Samples) -> bool:
            return g.get((info, (*labels, ("version", "4")))) == 1 and g.get(("mlscope_api_model_swaps", ())) == 1

        served.wait(lambda: all(swapped(g) for g in served.workers().values()), "version 4 in every worker")
        gauges = served.workers()
        assert len(gauges) == 2
        for g in gauges.values():  # the version each served before reads 0
            assert g[(info, (*labels, ("version", "1")))] == 0

        answers = until_every_worker_answered(served, set(gauges), 32)
        truth = expected(registered_model(own_store, "4"), [THIRD_CLASS_MAN])[0]
        assert {pid for _, pid, _ in answers} == set(gauges)
        assert all(status == 200 and body["model"]["version"] == "4" and abs(body["probability"] - truth) <= 1e-9
                   for status, _, body in answers)
        log = served.log()
    for pid in gauges:
        assert f"(pid {pid}): serving titanic-survival version 4 (@live)" in log, log


def test_a_killed_worker_is_replaced_and_its_counts_are_kept(own_store: Store, tmp_path: Path) -> None:
    with serving(own_store, tmp_path, "--workers", "2") as served:
        workers = set(served.wait_loaded(2))
        answers = until_every_worker_answered(served, workers, 32)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        served.wait(lambda: victim not in served.workers() and len(served.workers()) == 2, "a replacement worker")
        replacement = (set(served.wait_loaded(2)) - workers).pop()
        assert alive(replacement) and not alive(victim)
        _, samples = served.scrape()
        assert samples[PREDICTED] == len(answers)  # the dead worker's requests still count
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=60) == 0, served.log()
    assert f"(pid {victim}) was killed by SIGKILL; starting a new one" in served.log()


def test_sigterm_drains_every_worker_and_leaves_nothing_behind(own_store: Store, tmp_path: Path) -> None:
    """Workers from MLSCOPE_API_WORKERS; an explained batch in flight when SIGTERM arrives still answers."""
    with serving(own_store, tmp_path, env={"MLSCOPE_API_WORKERS": "2"}) as served:
        workers = set(served.wait_loaded(2))
        folders = list(served.tmpdir.glob("mlscope-metrics-*"))
        assert len(folders) == 1 and list(folders[0].glob("*.db"))
        slow_body = [{**THIRD_CLASS_MAN, "age": float(a), "fare": float(f)} for a in range(60) for f in range(10)]
        outcome: dict[str, httpx.Response] = {}
        request = threading.Thread(target=lambda: outcome.update(reply=httpx.post(
            f"{served.url}/predict/batch", params={"explain": "true"}, json=slow_body, timeout=60)))
        request.start()
        time.sleep(0.3)
        served.process.send_signal(signal.SIGTERM)
        request.join()
        assert served.process.wait(timeout=60) == 0, served.log()
    reply = outcome["reply"]
    assert reply.status_code == 200 and len(reply.json()) == 600, served.log()
    assert int(reply.headers[WORKER_HEADER]) in workers
    assert not any(alive(pid) for pid in workers)
    assert list(served.tmpdir.iterdir()) == []
    assert "Traceback" not in served.log()


def test_ctrl_c_in_a_terminal_stops_every_worker(own_store: Store, tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group: the parent and each worker get SIGINT at once."""
    with serving(own_store, tmp_path, "--workers", "2") as served:
        workers = set(served.wait_loaded(2))
        os.killpg(served.process.pid, signal.SIGINT)
        assert served.process.wait(timeout=60) == 0, served.log()
    assert not any(alive(pid) for pid in workers)
    assert list(served.tmpdir.iterdir()) == [] and "Traceback" not in served.log()


def test_a_killed_parent_takes_its_workers_along(own_store: Store, tmp_path: Path) -> None:
    with serving(own_store, tmp_path, "--workers", "2") as served:
        workers = set(served.wait_loaded(2))
        served.process.kill()
        served.process.wait()
        deadline = time.monotonic() + 60
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers), served.log()  # SIGTERM from the kernel, then drained
    assert "Traceback" not in served.log()


def test_a_worker_that_cannot_start_stops_all_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "mlscope", "--tracking-uri", "foo://nowhere", "serve", "--workers",
                           "2", "--port", str(port)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "unsupported URI 'foo://nowhere'" in done.stderr
    assert "before it was serving; stopped the others" in done.stderr.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


def test_bad_worker_counts_and_a_taken_port_are_one_line(own_store: Store) -> None:
    with socket.socket() as taken:  # every case names this port: a server that started anyway would fail at once
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for args, env in ((["--workers", "0"], {}), (["--workers", "65"], {}), ([], {"MLSCOPE_API_WORKERS": "0"})):
            result = CliRunner().invoke(app, ["serve", "--port", port, *args], env={**own_store.env, **env})
            assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert result.output.strip() == "error: MLSCOPE_API_WORKERS='0': Input should be greater than or equal to 1"
        result = invoke(own_store, "serve", "--workers", "2", "--port", port)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: cannot listen on 127.0.0.1:{port}: the port is already in use"
