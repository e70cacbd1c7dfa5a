"""The prediction API as a real server: hot swap under continuous load over real HTTP, and the
`mlscope serve` process draining in-flight requests on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlscope.serving.app import build_api
from tests.conftest import Store
from tests.live import free_port, live_app, wait_for_ok
from tests.integration.test_serve import THIRD_CLASS_MAN, expected, registered_model

pytestmark = pytest.mark.slow


@pytest.fixture
def own_store(trained, tmp_path: Path) -> Store:
    store, _ = trained
    copy = Store(tmp_path)
    shutil.copy(store.root / "mlflow.db", copy.root / "mlflow.db")
    return copy


@contextmanager
def live_server(store: Store, **overrides: object) -> Iterator[str]:
    with live_app(build_api(store.settings(**overrides)), ready_path="/ready") as url:
        yield url


def test_hot_swap_under_load_fails_no_request(own_store: Store) -> None:
    client = own_store.client()
    client.set_registered_model_alias("titanic-survival", "live", "1")
    answers: list[tuple[str, float]] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                try:
                    reply = http.post("/predict", json=THIRD_CLASS_MAN)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code} {reply.text}")
                    continue
                body = reply.json()
                answers.append((body["model"]["version"], body["probability"]))

    with live_server(own_store, alias="live", poll_seconds=0.1) as url:
        workers = [threading.Thread(target=hammer, args=(url,)) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        client.set_registered_model_alias("titanic-survival", "live", "4")
        deadline = time.monotonic() + 30
        while not any(v == "4" for v, _ in answers[-20:]) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        stop.set()
        for worker in workers:
            worker.join()
        model_info = httpx.get(f"{url}/model").json()

    assert failures == []
    versions = [v for v, _ in answers]
    assert set(versions) == {"1", "4"} and versions[-1] == "4"
    assert model_info["version"] == "4" and model_info["swaps"] == 1
    for version in ("1", "4"):
        truth = expected(registered_model(own_store, version), [THIRD_CLASS_MAN])[0]
        produced = {p for v, p in answers if v == version}
        assert produced == {truth} or max(abs(p - truth) for p in produced) <= 1e-9, version


def test_concurrent_requests_share_model_calls(own_store: Store) -> None:
    passengers = [{**THIRD_CLASS_MAN, "age": float(age)} for age in range(1, 65)]
    with live_server(own_store) as url:
        results: dict[int, float] = {}

        def ask(index: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                results[index] = http.post("/predict", json=passengers[index]).json()["probability"]

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(passengers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    truth = expected(registered_model(own_store, "3"), passengers)
    assert np.abs(np.array([results[i] for i in range(len(passengers))]) - truth).max() <= 1e-9


def test_serve_command_drains_in_flight_requests_on_sigterm(own_store: Store, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **own_store.env, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "mlscope", "serve", "--port", str(port)], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_ok(f"{url}/ready", 60)
        slow_body = [{**THIRD_CLASS_MAN, "age": float(a), "fare": float(f)} for a in range(60) for f in range(10)]
        outcome: dict[str, httpx.Response] = {}
        request = threading.Thread(target=lambda: outcome.update(reply=httpx.post(
            f"{url}/predict/batch", params={"explain": "true"}, json=slow_body, timeout=60)))
        request.start()
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        request.join()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    reply = outcome["reply"]
    assert reply.status_code == 200 and len(reply.json()) == 600, (tmp_path / "serve.log").read_text()[-2000:]
    assert "explanation" in reply.json()[-1]


def test_serve_command_rejects_bad_options(own_store: Store) -> None:
    from tests.conftest import invoke

    result = invoke(own_store, "serve", "--port", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output
