"""Drift of the served version on the API's /metrics, for Prometheus alerting rules.

Computed when /metrics is scraped, at most once per `refresh_seconds` (the scrape waits for it in a worker
thread; later scrapes reuse it), over the last `settings.monitor_window` of the prediction log against the
version's training reference — the same statistics and thresholds as `mlscope monitor` and the Production
view. With several workers each answers scrapes from its own copy; they read the same files."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.tracking import MlflowClient
from prometheus_client.core import GaugeMetricFamily, Metric

from mlscope.config import Settings
from mlscope.errors import MlscopeError
from mlscope.monitoring import drift as drift_stats
from mlscope.monitoring.reference import load_reference
from mlscope.monitoring.report import REFERENCE_CACHE
from mlscope.monitoring.window import parse_window
from mlscope.serving.loading import LoadedModel

log = logging.getLogger(__name__)

STATUS_VALUES = {"ok": 0, "watch": 1, "alert": 2}


@dataclass(frozen=True)
class Snapshot:
    """One computation: the served version's drift table, or why there is none."""

    model: str
    version: str
    table: drift_stats.DriftTable | None
    problem: str | None


class DriftGauges:
    """A prometheus_client collector of the served version's drift (register it in the exposed registry)."""

    def __init__(self, settings: Settings, current: Callable[[], LoadedModel | None],
                 client: Callable[[], MlflowClient], refresh_seconds: float = 60.0) -> None:
        self.settings, self.current, self.client = settings, current, client
        self.refresh_seconds = refresh_seconds
        self.span = parse_window(settings.monitor_window)
        self._snapshot: Snapshot | None = None
        self._computed_at = 0.0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Recompute when the last result is older than `refresh_seconds` or the served version changed."""
        model = self.current()
        with self._lock:
            fresh = time.monotonic() - self._computed_at < self.refresh_seconds
            same = self._snapshot is not None and model is not None and \
                (self._snapshot.model, self._snapshot.version) == (model.name, model.version)
            if model is None or (fresh and same):
                return
            self._snapshot = self._compute(model)
            self._computed_at = time.monotonic()

    def _compute(self, model: LoadedModel) -> Snapshot:
        if model.run_id is None:
            return Snapshot(model.name, model.version, None, "the served version has no source run")
        try:
            reference = load_reference(self.client(), model.run_id, self.settings.monitor_dir / REFERENCE_CACHE)
            until = datetime.now(UTC)
            table = drift_stats.window_drift(self.settings.monitor_dir, model.name, model.version, until - self.span,
                                             until, reference, drift_stats.Thresholds.from_settings(self.settings))
        except MlscopeError as exc:
            return Snapshot(model.name, model.version, None, exc.message)
        except Exception as exc:  # noqa: BLE001 - a scrape must answer; the log says what failed
            log.warning("drift for /metrics failed: %s", exc)
            return Snapshot(model.name, model.version, None, str(exc).splitlines()[0] if str(exc) else repr(exc))
        return Snapshot(model.name, model.version, table, None)

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        if snapshot is None:
            return
        labels = [snapshot.model, snapshot.version]
        available = GaugeMetricFamily("mlscope_drift_available", "1 when the served version's drift could be "
                                      "computed (a training reference exists), else 0.", labels=["model", "version"])
        available.add_metric(labels, 0.0 if snapshot.table is None else 1.0)
        yield available
        table = snapshot.table
        if table is None:
            return
        rows = GaugeMetricFamily("mlscope_drift_window_rows", "Logged predictions of the served version in the "
                                 "drift window (MLSCOPE_MONITOR_WINDOW).", labels=["model", "version"])
        rows.add_metric(labels, float(table.rows))
        yield rows
        if table.rows == 0:
            return
        overall = GaugeMetricFamily("mlscope_drift_overall_status", "Worst drift status of the served version's "
                                    "features and prediction: 0 ok, 1 watch, 2 alert.", labels=["model", "version"])
        overall.add_metric(labels, float(STATUS_VALUES.get(table.status, 0)))
        yield overall
        status = GaugeMetricFamily("mlscope_drift_status", "Drift status per feature (and 'prediction'): 0 ok, "
                                   "1 watch, 2 alert.", labels=["model", "version", "feature"])
        psi = GaugeMetricFamily("mlscope_drift_psi", "Population stability index per feature (and 'prediction') "
                                "against the training reference.", labels=["model", "version", "feature"])
        for feature in [*table.features, *([table.prediction] if table.prediction else [])]:
            if feature.status in STATUS_VALUES:  # a column the window has no value of has no status
                status.add_metric([*labels, feature.feature], float(STATUS_VALUES[feature.status]))
            if feature.psi is not None:
                psi.add_metric([*labels, feature.feature], float(feature.psi))
        yield status
        yield psi
