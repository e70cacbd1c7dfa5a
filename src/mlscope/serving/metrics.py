"""Prometheus metrics of the prediction API, collected by a plain ASGI middleware."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    """One registry per app, so two apps in one process (tests) never share counters."""

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only add noise to scrapes
        self.registry = CollectorRegistry()
        self.requests = Counter("mlscope_api_requests", "HTTP requests answered.",
                                ["method", "path", "status"], registry=self.registry)
        self.errors = Counter("mlscope_api_errors", "HTTP requests answered with status >= 400.",
                              ["path", "status"], registry=self.registry)
        self.latency = Histogram("mlscope_api_request_seconds", "Time from request to the last byte of the answer.",
                                 ["path"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rows = Counter("mlscope_api_predicted_rows", "Rows predicted.", ["endpoint"], registry=self.registry)
        self.model = Gauge("mlscope_api_model_info", "1 for the model version being served.",
                           ["name", "version", "alias"], registry=self.registry)
        self.ready = Gauge("mlscope_api_model_loaded", "1 when a model is loaded.", registry=self.registry)
        self.swaps = Gauge("mlscope_api_model_swaps", "Hot swaps since start.", registry=self.registry)
        self.check_failures = Gauge("mlscope_api_registry_check_failures",
                                    "Failed registry checks since start.", registry=self.registry)

    def set_model(self, name: str, version: str, alias: str) -> None:
        self.model.clear()
        self.model.labels(name, version, alias).set(1)
        self.ready.set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


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
