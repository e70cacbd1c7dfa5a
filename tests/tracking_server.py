"""A real `mlflow server` subprocess for tests, started the way mlscope starts it (stack/tracking_server.py),
that a test can stop, kill and start again on the same port."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlscope.stack.tracking_server import TrackingServer
from tests.live import free_port, wait_for_ok


class ServerProcess:
    """One `mlflow server` with proxied artifacts in `artifacts`, logging to `log`."""

    def __init__(self, backend_store_uri: str, artifacts: Path, log: Path, port: int | None = None) -> None:
        self.spec = TrackingServer(backend_store_uri, artifacts, port=port or free_port())
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.spec.url

    def start(self, wait_seconds: float = 90) -> None:
        with self.log.open("a") as out:
            self.process = subprocess.Popen(self.spec.command(), env={**os.environ, **self.spec.environment()},
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_for_ok(f"{self.url}/health", wait_seconds):
            tail = self.log.read_text()[-2000:]
            self.stop()
            pytest.fail(f"mlflow server did not answer /health within {wait_seconds:.0f} s:\n{tail}")

    def _signal(self, sig: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return

    def kill(self) -> None:
        """SIGKILL the whole server (uvicorn and its workers): an abrupt crash."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        self._signal(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def mlflow_server(backend_store_uri: str, folder: Path) -> Iterator[ServerProcess]:
    """A started server over `backend_store_uri`, artifacts and log under `folder`; stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(backend_store_uri, folder / "artifacts", folder / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
