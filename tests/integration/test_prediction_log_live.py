"""The prediction log of real `mlscope serve` processes: SIGTERM loses no logged row (single process
and every worker of --workers, each writing its own part files), SIGKILL loses at most the rows of the
last flush interval, and feedback sent to any worker finds a prediction another worker answered."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from mlscope.monitoring import store
from tests.conftest import Store, copy_of
from tests.integration.test_serve import THIRD_CLASS_MAN
from tests.integration.test_serve_workers import WORKER_HEADER, serving

pytestmark = pytest.mark.slow

MODEL = "titanic-survival"
FLUSH_SECONDS = 0.5


@pytest.fixture
def own_store(trained, tmp_path: Path) -> Store:
    store_, _ = trained
    return copy_of(store_, tmp_path / "store")


def monitor_of(store_: Store) -> Path:
    return Path(store_.env["MLSCOPE_MONITOR_DIR"])


def logged_ids(store_: Store) -> set[str]:
    now = datetime.now(UTC)
    table = store.predictions(monitor_of(store_), MODEL, now - timedelta(hours=1), now + timedelta(minutes=1),
                              columns=["request_id"])
    return set(table.column("request_id").to_pylist()) if table.num_columns else set()


class Traffic:
    """Threads posting single and batch predictions until stopped; what was answered, and when."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url, self.answered, self.workers = url, [], set()
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _run(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            count = 0
            while not self.stop.is_set():
                count += 1
                try:
                    if count % 5 == 0:
                        reply = http.post("/predict/batch", json=[THIRD_CLASS_MAN] * 3)
                        ids = [answer["request_id"] for answer in reply.json()]
                    else:
                        reply = http.post("/predict", json={**THIRD_CLASS_MAN, "age": float(n + count % 60)})
                        ids = [reply.json()["request_id"]]
                except (httpx.HTTPError, ValueError):
                    continue  # the server is going away: this request was not answered
                if reply.status_code == 200:
                    with self.lock:
                        self.answered.extend((time.time(), request_id) for request_id in ids)
                        self.workers.add(reply.headers.get(WORKER_HEADER))


def every_part_is_readable(store_: Store) -> int:
    parts = list(monitor_of(store_).rglob("*.parquet"))
    for part in parts:
        pq.read_table(part)
    return len(parts)


def test_sigterm_loses_no_row_of_any_worker(own_store: Store, tmp_path: Path) -> None:
    """A long flush interval: every row on disk was written by the workers' shutdown."""
    with serving(own_store, tmp_path, "--workers", "2", env={"MLSCOPE_LOG_FLUSH_SECONDS": "60"}) as served:
        served.wait_loaded(2)
        with Traffic(served.url) as traffic:
            deadline = time.monotonic() + 30
            while len(traffic.workers) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)
            assert logged_ids(own_store) == set()  # nothing written yet: all of it is buffered
            served.process.send_signal(signal.SIGTERM)
            assert served.process.wait(timeout=60) == 0, served.log()
    answered = {request_id for _, request_id in traffic.answered}
    assert len(traffic.workers) == 2 and len(answered) > 100
    assert answered <= logged_ids(own_store)
    pids = {part.name.split("-")[2] for part in monitor_of(own_store).rglob("part-*.parquet")}
    assert pids == traffic.workers  # each worker wrote its own files
    assert every_part_is_readable(own_store) >= 2


def test_sigkill_loses_at_most_the_last_flush_interval(own_store: Store, tmp_path: Path) -> None:
    with serving(own_store, tmp_path, env={"MLSCOPE_LOG_FLUSH_SECONDS": str(FLUSH_SECONDS)}) as served:
        with Traffic(served.url) as traffic:
            time.sleep(3.0)
            killed_at = time.time()
            served.process.send_signal(signal.SIGKILL)
            served.process.wait(timeout=30)
    logged = logged_ids(own_store)
    answered = dict((request_id, at) for at, request_id in traffic.answered)
    lost = {request_id: at for request_id, at in answered.items() if request_id not in logged}
    assert len(answered) > 100 and len(lost) < len(answered) / 2
    # a row is buffered when answered and written within one flush interval (+ the write itself)
    assert all(at > killed_at - FLUSH_SECONDS - 0.5 for at in lost.values()), sorted(
        killed_at - at for at in lost.values())[-5:]
    every_part_is_readable(own_store)


def test_feedback_finds_a_prediction_another_worker_answered(own_store: Store, tmp_path: Path) -> None:
    with serving(own_store, tmp_path, "--workers", "2",
                 env={"MLSCOPE_LOG_FLUSH_SECONDS": str(FLUSH_SECONDS)}) as served:
        served.wait_loaded(2)
        crossed, n = 0, -1
        while n < 15 or (crossed == 0 and n < 200):  # until the kernel handed the two posts to different workers
            n += 1
            answer = httpx.post(f"{served.url}/predict", json={**THIRD_CLASS_MAN, "fare": float(n)}, timeout=30)
            given = httpx.post(f"{served.url}/feedback", json={"request_id": answer.json()["request_id"],
                                                                "actual": n % 2}, timeout=30)
            assert given.status_code == 200, given.text
            crossed += answer.headers[WORKER_HEADER] != given.headers[WORKER_HEADER]
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=60) == 0, served.log()
    assert crossed > 0  # the kernel spread the connections over both workers
    now = datetime.now(UTC)
    labelled = store.labelled(monitor_of(own_store), MODEL, now - timedelta(hours=1), now)
    assert sorted(zip(labelled.column("in.Fare").to_pylist(), labelled.column("actual").to_pylist())) == [
        (float(fare), str(fare % 2)) for fare in range(n + 1)]
