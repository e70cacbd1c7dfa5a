"""The API's prediction log and feedback over HTTP (TestClient, real registry, real Parquet files):
request ids in answers and headers, every answered row logged with its inputs and output, feedback
recorded against the right prediction with the errors users meet, and the log's counters on /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mlscope.monitoring import layout, store
from mlscope.serving.app import build_api
from tests.conftest import Store
from tests.integration.test_serve import FIRST_CLASS_WOMAN, THIRD_CLASS_MAN, served_store  # noqa: F401

pytestmark = pytest.mark.slow

MODEL = "titanic-survival"


@contextmanager
def api_with(store_: Store, monitor: Path, **settings: Any) -> Iterator[TestClient]:
    with TestClient(build_api(store_.settings(monitor_dir=monitor, **settings))) as client:
        yield client


def logged(monitor: Path) -> pa.Table:
    now = datetime.now(UTC)
    return store.predictions(monitor, MODEL, now - timedelta(hours=1), now + timedelta(minutes=1))


def counter(client: TestClient, name: str) -> float:
    samples = {s.name: s.value for family in text_string_to_metric_families(client.get("/metrics").text)
               for s in family.samples}
    return samples.get(name, 0.0)


def passengers(count: int) -> list[dict[str, Any]]:
    return [{**THIRD_CLASS_MAN, "age": float(age), "fare": None if age % 4 == 0 else 7.25 + age,
             "embarked": "S" if age % 3 else None} for age in range(1, count + 1)]


def test_every_answer_has_its_request_id_and_every_row_is_logged(served_store: Store,  # noqa: F811
                                                                   tmp_path: Path) -> None:
    batch_body = passengers(5)
    with api_with(served_store, tmp_path) as api:
        one = api.post("/predict", json=FIRST_CLASS_WOMAN)
        explained = api.post("/predict", json=THIRD_CLASS_MAN, params={"explain": "true"})
        batch = api.post("/predict/batch", json=batch_body)
        empty = api.post("/predict/batch", json=[])
    single_id = one.headers["x-request-id"]
    assert one.json()["request_id"] == single_id and layout.is_request_id(single_id) and "-" not in single_id
    assert explained.json()["request_id"] == explained.headers["x-request-id"] != single_id
    batch_id = batch.headers["x-request-id"]
    assert [a["request_id"] for a in batch.json()] == [f"{batch_id}-{i}" for i in range(5)]
    assert empty.json() == [] and layout.is_request_id(empty.headers["x-request-id"])

    table = logged(tmp_path)  # the app's shutdown wrote everything
    rows = {row["request_id"]: row for row in table.to_pylist()}
    assert set(rows) == {single_id, explained.headers["x-request-id"], *(f"{batch_id}-{i}" for i in range(5))}
    woman = rows[single_id]
    assert woman["output"] == one.json()["probability"] and woman["label"] == str(one.json()["survived"])
    assert (woman["in.Pclass"], woman["in.Sex"], woman["in.Age"], woman["in.Fare"]) == (1.0, "female", 28.0, 100.0)
    assert woman["model_name"] == MODEL and woman["model_version"] == "3" and woman["alias"] == "production"
    assert woman["latency_ms"] > 0 and woman["in.Embarked"] is None
    assert rows[explained.headers["x-request-id"]]["output"] == explained.json()["probability"]
    for i, (answer, sent) in enumerate(zip(batch.json(), batch_body, strict=True)):
        row = rows[f"{batch_id}-{i}"]
        assert row["output"] == answer["probability"] and row["in.Age"] == sent["age"]
        assert row["in.Fare"] == sent["fare"] and row["in.Embarked"] == sent["embarked"]
    assert len({rows[f"{batch_id}-{i}"]["latency_ms"] for i in range(5)}) == 1  # a batch's rows share its time


def test_feedback_joins_the_right_predictions(served_store: Store, tmp_path: Path) -> None:  # noqa: F811
    body = passengers(12)
    with api_with(served_store, tmp_path) as api:
        answers = api.post("/predict/batch", json=body).json()
        singles = [api.post("/predict", json=p).json() for p in body[:3]]
        truth = {a["request_id"]: str(int(p["age"]) % 2) for a, p in zip(answers, body, strict=True)}
        truth.update({a["request_id"]: "1" for a in singles})
        first = api.post("/feedback", json={"request_id": singles[0]["request_id"], "actual": 1})
        assert first.status_code == 200 and first.json() == {"request_id": singles[0]["request_id"], "actual": "1"}
        recorded = api.post("/feedback/batch", json=[{"request_id": a["request_id"], "actual": truth[a["request_id"]]}
                                                     for a in [*answers, *singles[1:]]])
        assert recorded.status_code == 200 and recorded.json() == {"recorded": 14}
    table = store.labelled(tmp_path, MODEL, datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
    assert table.num_rows == 15
    ages = {a["request_id"]: p["age"] for a, p in zip([*answers, *singles], [*body, *body[:3]], strict=True)}
    for row in table.to_pylist():
        assert row["actual"] == truth[row["request_id"]] and row["in.Age"] == ages[row["request_id"]]
        assert row["feedback_ts"] >= row["ts"]


def error_of(reply: Any) -> tuple[int, str, str]:
    return reply.status_code, reply.json()["error"]["code"], reply.json()["error"]["field"]


def test_feedback_errors_name_the_field_and_overwrite_nothing(served_store: Store,  # noqa: F811
                                                               tmp_path: Path) -> None:
    with api_with(served_store, tmp_path) as api:
        ids = [a["request_id"] for a in api.post("/predict/batch", json=passengers(3)).json()]
        unknown = layout.new_request_id()
        assert error_of(api.post("/feedback", json={"request_id": unknown, "actual": 1})) == (
            404, "not_found", "request_id")
        assert error_of(api.post("/feedback", json={"request_id": "not an id", "actual": 1}))[::2] == (
            422, "request_id")
        for wrong in ("maybe", 2, 0.5, "survived", True, None):
            assert error_of(api.post("/feedback", json={"request_id": ids[0], "actual": wrong}))[::2] == (
                422, "actual")
        assert api.post("/feedback", json={"request_id": ids[0], "actual": "0"}).status_code == 200
        assert error_of(api.post("/feedback", json={"request_id": ids[0], "actual": "1"})) == (
            409, "conflict", "request_id")
        batch = [{"request_id": ids[1], "actual": 1}, {"request_id": ids[2], "actual": "yes"}]
        assert error_of(api.post("/feedback/batch", json=batch))[::2] == (422, "1.actual")
        twice = [{"request_id": ids[1], "actual": 1}, {"request_id": ids[1], "actual": 0}]
        assert error_of(api.post("/feedback/batch", json=twice)) == (409, "conflict", "1.request_id")
        with_unknown = [{"request_id": ids[1], "actual": 1}, {"request_id": unknown, "actual": 0}]
        assert error_of(api.post("/feedback/batch", json=with_unknown)) == (404, "not_found", "1.request_id")
        with_answered = [{"request_id": ids[1], "actual": 1}, {"request_id": ids[0], "actual": 1}]
        assert error_of(api.post("/feedback/batch", json=with_answered)) == (409, "conflict", "1.request_id")
        assert api.post("/feedback/batch", json=[{"request_id": ids[1], "actual": 1}]).json() == {"recorded": 1}
        assert api.post("/feedback/batch", json=[]).json() == {"recorded": 0}
    everything = store.feedback(tmp_path, MODEL)
    assert sorted(zip(everything.column("request_id").to_pylist(), everything.column("actual").to_pylist())) == sorted(
        [(ids[0], "0"), (ids[1], "1")])  # refused requests recorded nothing


def test_the_log_counts_written_and_dropped_rows_on_metrics(served_store: Store, tmp_path: Path) -> None:  # noqa: F811
    with api_with(served_store, tmp_path, log_flush_seconds=0.05) as api:
        api.post("/predict/batch", json=passengers(7))
        api.post("/predict", json=THIRD_CLASS_MAN)
        for _ in range(100):
            if counter(api, "mlscope_prediction_log_rows_total") == 8:
                break
            time.sleep(0.05)
        assert counter(api, "mlscope_prediction_log_rows_total") == 8
        assert counter(api, "mlscope_prediction_log_dropped_total") == 0
    with api_with(served_store, tmp_path / "small", log_buffer_rows=4, log_flush_seconds=60) as api:
        api.post("/predict/batch", json=passengers(3))
        api.post("/predict/batch", json=passengers(2))  # 5 rows do not fit in 4: these 2 are dropped
        assert api.post("/predict", json=THIRD_CLASS_MAN).status_code == 200  # the 4th fits
        assert counter(api, "mlscope_prediction_log_dropped_total") == 2
        assert counter(api, "mlscope_prediction_log_rows_total") == 0  # nothing written yet
    assert logged(tmp_path / "small").num_rows == 4


def test_logging_off_or_sampled_out_logs_nothing(served_store: Store, tmp_path: Path) -> None:  # noqa: F811
    with api_with(served_store, tmp_path / "off", log_predictions=False) as api:
        answer = api.post("/predict", json=THIRD_CLASS_MAN)
        assert layout.is_request_id(answer.json()["request_id"])  # ids are answered all the same
        reply = api.post("/feedback", json={"request_id": answer.json()["request_id"], "actual": 1})
        assert error_of(reply) == (404, "not_found", "request_id")
        assert "LOG_PREDICTIONS" in reply.json()["error"]["message"]
    assert not (tmp_path / "off").exists()
    with api_with(served_store, tmp_path / "none", log_sample_rate=0.0) as api:
        for _ in range(5):
            api.post("/predict", json=THIRD_CLASS_MAN)
    assert logged(tmp_path / "none").num_rows == 0
