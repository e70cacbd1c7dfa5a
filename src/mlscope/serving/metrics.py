"""Prometheus metrics of the prediction API, collected by a plain ASGI middleware.

With several worker processes (`mlscope serve --workers N`) the metrics use prometheus_client's
multiprocess mode: every worker writes its values to files in one folder, and a scrape answered by any
worker reads all of them — counters and histograms are totals over all workers (including workers that
died and were replaced), the gauges have one series per live worker (`pid` label)."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client import values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PER_WORKER = "liveall"  # multiprocess mode of every gauge: one series per live worker, labelled with its pid


def use_multiprocess(directory: Path) -> None:
    """Make this process write every metric value created from now on to files in `directory`.

    prometheus_client picks its value class from PROMETHEUS_MULTIPROC_DIR when it is imported, and reads
    the folder from that variable again whenever a value is created: a worker sets both here, once,
    after it started, instead of relying on the environment at import time."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def forget_worker(pid: int, directory: Path) -> None:
    """Drop the gauges of a worker that has ended (its counts stay in the totals)."""
    mark_process_dead(pid, str(directory))


class ApiMetrics:
    """One registry per app, so two apps in one process (tests) never share counters. With
    `multiprocess_dir`, the values live in that folder (see `use_multiprocess`) and a scrape reports
    what every worker writing there has counted."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        disable_created_metrics()  # the *_created series only add noise to scrapes
        if multiprocess_dir is not None:
            use_multiprocess(multiprocess_dir)
        self.multiprocess = multiprocess_dir is not None
        self.registry = CollectorRegistry()
        self.requests = Counter("mlscope_api_requests", "HTTP requests answered.",
                                ["method", "path", "status"], registry=self.registry)
        self.errors = Counter("mlscope_api_errors", "HTTP requests answered with status >= 400.",
                              ["path", "status"], registry=self.registry)
        self.latency = Histogram("mlscope_api_request_seconds", "Time from request to the last byte of the answer.",
                                 ["path"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rows = Counter("mlscope_api_predicted_rows", "Rows predicted.", ["endpoint"], registry=self.registry)
        self.log_rows = Counter("mlscope_prediction_log_rows", "Predictions written to the prediction log.",
                                registry=self.registry)
        self.log_dropped = Counter("mlscope_prediction_log_dropped", "Predictions not logged: the buffer was "
                                   "full (MLSCOPE_LOG_BUFFER_ROWS) or a write failed.", registry=self.registry)
        self.model = Gauge("mlscope_api_model_info", "1 for the model version being served.",
                           ["name", "version", "alias"], registry=self.registry, multiprocess_mode=PER_WORKER)
        self.ready = Gauge("mlscope_api_model_loaded", "1 when a model is loaded.", registry=self.registry,
                           multiprocess_mode=PER_WORKER)
        self.swaps = Gauge("mlscope_api_model_swaps", "Hot swaps since start.", registry=self.registry,
                           multiprocess_mode=PER_WORKER)
        self.check_failures = Gauge("mlscope_api_registry_check_failures", "Failed registry checks since start.",
                                    registry=self.registry, multiprocess_mode=PER_WORKER)
        self._served: tuple[str, str, str] | None = None
        self._exposed = self.registry
        if multiprocess_dir is not None:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=str(multiprocess_dir))

    def set_model(self, name: str, version: str, alias: str) -> None:
        previous, self._served = self._served, (name, version, alias)
        if previous is not None and previous != self._served:
            if self.multiprocess:  # a value written to the worker's file cannot be removed: it reads 0
                self.model.labels(*previous).set(0)
            else:
                self.model.remove(*previous)
        self.model.labels(name, version, alias).set(1)
        self.ready.set(1)

    def set_checks(self, swaps: int, failed: int) -> None:
        self.swaps.set(swaps)
        self.check_failures.set(failed)

    def exposition(self) -> bytes:
        return generate_latest(self._exposed)


class MetricsMiddleware:
    """Counts and times every HTTP request; unknown paths share one label to bound cardinality."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, paths: Callable[[], set[str]]) -> None:
        self.app, self.metrics, self.paths = app, metrics, paths
        self._known: set[str] | None = None  # the app's routes, read once they exist

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            if self._known is None:
                self._known = self.paths()
            path = scope["path"] if scope["path"] in self._known else "other"
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            if status >= 400:
                self.metrics.errors.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)
