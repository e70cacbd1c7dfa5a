"""The API's /metrics exports the served version's drift for Prometheus: traffic like the training data
stays ok, drifted traffic (older third-class passengers) is flagged on the features that moved."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mlscope.data.loader import load_titanic
from mlscope.serving.app import build_api
from tests.conftest import Store
from tests.integration.test_serve import served_store  # noqa: F401

pytestmark = pytest.mark.slow


def passengers(drifted: bool) -> list[dict[str, Any]]:
    frame = load_titanic().frame.sample(600, replace=True, random_state=1)
    rows = []
    for _, p in frame.iterrows():
        row = {"pclass": int(p.Pclass), "sex": p.Sex, "age": None if p.Age != p.Age else float(p.Age),
               "sibsp": int(p.SibSp), "parch": int(p.Parch), "fare": float(p.Fare),
               "embarked": None if p.Embarked != p.Embarked else p.Embarked}
        if drifted:
            row.update(pclass=3, age=float(60 + (row["age"] or 30) % 20))
        rows.append(row)
    return rows


def drift_samples(api: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = api.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name.startswith("mlscope_drift")}


def scrape_after_traffic(store: Store, monitor: Path, rows: list[dict[str, Any]]) -> dict[Any, float]:
    with TestClient(build_api(store.settings(monitor_dir=monitor, log_flush_seconds=0.1))) as api:
        assert api.post("/predict/batch", json=rows).status_code == 200
        time.sleep(0.5)  # the log's writer thread has written the batch
        return drift_samples(api)


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    matches = [v for (n, found), v in samples.items() if n == name and dict(found).items() >= labels.items()]
    assert len(matches) == 1, (name, labels, samples)
    return matches[0]


def test_traffic_like_the_training_data_is_ok(served_store: Store, tmp_path: Path) -> None:  # noqa: F811
    samples = scrape_after_traffic(served_store, tmp_path, passengers(drifted=False))
    assert value(samples, "mlscope_drift_available", model="titanic-survival", version="3") == 1
    assert value(samples, "mlscope_drift_window_rows") == 600
    assert value(samples, "mlscope_drift_overall_status") == 0
    assert value(samples, "mlscope_drift_status", feature="Age") == 0


def test_drifted_traffic_is_flagged_on_the_features_that_moved(served_store: Store,  # noqa: F811
                                                               tmp_path: Path) -> None:
    samples = scrape_after_traffic(served_store, tmp_path, passengers(drifted=True))
    assert value(samples, "mlscope_drift_overall_status") == 2
    assert value(samples, "mlscope_drift_status", feature="Age") == 2
    assert value(samples, "mlscope_drift_status", feature="Pclass") == 2
    assert value(samples, "mlscope_drift_status", feature="Sex") == 0  # resampled from the data, not moved
    assert value(samples, "mlscope_drift_psi", feature="Age") >= 0.25


def test_no_traffic_means_no_status(served_store: Store, tmp_path: Path) -> None:  # noqa: F811
    with TestClient(build_api(served_store.settings(monitor_dir=tmp_path))) as api:
        samples = drift_samples(api)
    assert value(samples, "mlscope_drift_window_rows") == 0
    assert not [name for name, _ in samples if name in ("mlscope_drift_overall_status", "mlscope_drift_status")]
