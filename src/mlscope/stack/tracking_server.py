"""How mlscope starts a stock `mlflow server` (for `mlscope up`, Docker Compose and the tests).

MLflow 3.17's defaults on this 2-core machine: 4 uvicorn workers plus 7 background job workers, 15
processes, 2.36 GB PSS. mlscope turns off the job runner (`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`: it
runs GenAI evaluation/scoring jobs mlscope never submits) and runs one uvicorn worker by default, which
serves requests concurrently from its thread pool: 2 processes, 0.41 GB PSS, 0.61x the stock requests/s
under 8 concurrent clients (bench/server_footprint.py). The Compose stack runs two workers."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKERS = 1


def local_url(host: str, port: int) -> str:
    """The URL this machine reaches a server at that binds `host` (all interfaces: via 127.0.0.1)."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


@dataclass(frozen=True)
class TrackingServer:
    """The options of one `mlflow server` with proxied artifact storage."""

    backend_store_uri: str
    artifacts_destination: Path | str
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = DEFAULT_WORKERS
    job_execution: bool = False

    @property
    def url(self) -> str:
        return local_url(self.host, self.port)

    def command(self) -> list[str]:
        """The argv that starts the server with the interpreter running mlscope."""
        destination = self.artifacts_destination
        if isinstance(destination, Path):
            destination = str(destination.resolve())
        return [sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", self.backend_store_uri,
                "--artifacts-destination", destination, "--serve-artifacts",
                "--host", self.host, "--port", str(self.port), "--workers", str(self.workers)]

    def environment(self) -> dict[str, str]:
        """Variables added to the server's environment."""
        return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if self.job_execution else "false"}
