"""The prediction log's pieces without a server: request ids, the part-file layout, the background
writer (bounded buffer, drops counted, everything written on close, sampling), the per-task columns,
DuckDB reads (window, versions, columns, versions with other inputs, labelled = first feedback) and
retention."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlscope import task as tasks
from mlscope.monitoring import layout, store
from mlscope.monitoring.writer import FeedbackLog, PredictionLog
from mlscope.serving.contract import signature_contract

NOW = datetime.now(UTC)


def served(task: tasks.Task = tasks.REGRESSION, version: str = "1", classes: tuple[str, ...] = (),
           columns: tuple[tuple[str, str, bool], ...] = (("x", "double", True), ("city", "string", False)),
           name: str = "house prices") -> Any:
    """What the log reads from a loaded model: its name, version, alias, task and contract."""
    return SimpleNamespace(name=name, version=version, alias="production", task=task,
                           contract=signature_contract(columns, task, classes))


def item(model: Any, **values: Any) -> Any:
    return model.contract.request_model(**values)


def read_all(root: Path, model: str = "house prices") -> pa.Table:
    return store.predictions(root, model, NOW - timedelta(days=1), NOW + timedelta(days=1))


def test_request_ids_are_time_ordered_and_carry_their_time() -> None:
    before = int(time.time() * 1000)
    first = layout.new_request_id()
    second = layout.new_request_id(before + 5)
    assert layout.is_request_id(first) and len(first) == 18 and first[:12] <= second[:12]
    assert abs(layout.request_time(first).timestamp() * 1000 - before) < 1000
    assert layout.is_request_id(layout.row_request_id(first, 41)) and layout.row_request_id(first, 41).endswith("-41")
    assert not layout.is_request_id("nope") and not layout.is_request_id(first.upper())
    assert layout.request_time("f" * 18).year == 9998  # a well-formed id from the far future reads as a date


def test_a_part_file_lands_in_its_model_and_date_folder_under_its_final_name_only(tmp_path: Path) -> None:
    model = served(name="a/b c")
    log = PredictionLog(tmp_path, flush_seconds=60, max_rows=100)
    log.add_one(model, item(model, x=1.5, city="Oslo"), 10.0, layout.new_request_id(), 2.0)
    log.close()
    files = list(tmp_path.rglob("*"))
    parts = [f for f in files if f.is_file()]
    assert len(parts) == 1
    part = parts[0]
    assert part.parent.parent.name == "model=a%2Fb%20c" and part.parent.name == f"date={NOW.date().isoformat()}"
    first_ms, pid, _ = part.name.removeprefix("part-").removesuffix(".parquet").split("-")
    assert int(pid) == os.getpid() and abs(int(first_ms) - time.time() * 1000) < 5000
    assert not any(f.name.endswith(".tmp") for f in files)


def test_rows_are_written_in_the_background_within_the_flush_interval(tmp_path: Path) -> None:
    model = served()
    written: list[int] = []
    log = PredictionLog(tmp_path, flush_seconds=0.1, max_rows=100, on_written=written.append)
    log.add_one(model, item(model, x=1.0, city=None), 3.0, layout.new_request_id(), 1.0)
    deadline = time.monotonic() + 5
    while not written and time.monotonic() < deadline:
        time.sleep(0.02)
    assert written == [1] and read_all(tmp_path).num_rows == 1
    log.close()


def test_a_full_buffer_drops_and_counts_instead_of_growing(tmp_path: Path) -> None:
    model = served()
    dropped: list[int] = []
    log = PredictionLog(tmp_path, flush_seconds=60, max_rows=5, on_dropped=dropped.append)
    columns = {"x": np.arange(4, dtype=np.float64), "city": np.array(["a", "b", None, "d"], dtype=object)}
    assert log.add_batch(model, columns, np.arange(4, dtype=np.float64), layout.new_request_id(), 1.0)
    assert not log.add_batch(model, columns, np.arange(4, dtype=np.float64), layout.new_request_id(), 1.0)
    assert log.add_one(model, item(model, x=9.0, city="z"), 9.0, layout.new_request_id(), 1.0)
    assert not log.add_one(model, item(model, x=9.0, city="z"), 9.0, layout.new_request_id(), 1.0)
    assert log.buffered == 5 and dropped == [4, 1] and log.dropped == 5
    log.close()
    assert log.written == 5 and read_all(tmp_path).num_rows == 5
    assert not log.add_one(model, item(model, x=1.0, city="z"), 1.0, layout.new_request_id(), 1.0)  # closed
    assert log.dropped == 6


def test_sampling_logs_about_the_asked_share() -> None:
    never, always, half = (PredictionLog(Path("unused"), 60, 10, sample_rate=rate) for rate in (0.0, 1.0, 0.5))
    assert not any(never.sampled() for _ in range(1000)) and all(always.sampled() for _ in range(1000))
    share = sum(half.sampled() for _ in range(20_000)) / 20_000
    assert 0.47 < share < 0.53


def test_a_regressors_rows_hold_ids_inputs_and_prediction(tmp_path: Path) -> None:
    model = served()
    log = PredictionLog(tmp_path, flush_seconds=60, max_rows=100)
    single = layout.new_request_id()
    batch = layout.new_request_id()
    log.add_one(model, item(model, x=2.5, city="Rome"), 151.25, single, 4.0)
    log.add_batch(model, {"x": np.array([1.0, np.nan]), "city": np.array([None, "Oslo"], dtype=object)},
                  np.array([100.0, 200.0]), batch, 7.5)
    log.close()
    table = read_all(tmp_path)
    assert table.column_names == ["request_id", "ts", "model_name", "model_version", "alias", "latency_ms", "output",
                                  "label", "in.x", "in.city"]
    assert table.schema.field("ts").type == layout.TIMESTAMP and table.schema.field("in.x").type == pa.float64()
    assert table.schema.field("in.city").type == pa.string()
    rows = sorted(table.to_pylist(), key=lambda r: r["request_id"])
    assert [r["request_id"] for r in rows] == sorted([single, f"{batch}-0", f"{batch}-1"])
    by_id = {r["request_id"]: r for r in rows}
    assert by_id[single]["output"] == 151.25 and by_id[single]["in.x"] == 2.5 and by_id[single]["in.city"] == "Rome"
    assert by_id[single]["latency_ms"] == 4.0 and by_id[single]["label"] is None
    assert by_id[f"{batch}-1"]["in.x"] is None and by_id[f"{batch}-1"]["in.city"] == "Oslo"
    assert by_id[f"{batch}-0"]["in.city"] is None and by_id[f"{batch}-0"]["latency_ms"] == 7.5
    assert {r["model_name"] for r in rows} == {"house prices"} and {r["model_version"] for r in rows} == {"1"}


def test_classifiers_log_their_output_label_and_class_probabilities(tmp_path: Path) -> None:
    binary = served(tasks.BINARY, name="churn", columns=(("x", "double", True),))
    multi = served(tasks.MULTICLASS, name="wine", classes=("red", "white", "rose"), columns=(("x", "double", True),))
    log = PredictionLog(tmp_path, flush_seconds=60, max_rows=100)
    log.add_batch(binary, {"x": np.array([1.0, 2.0, 3.0])}, np.array([0.2, 0.5, 0.9]), layout.new_request_id(), 1.0)
    log.add_one(multi, item(multi, x=1.0), [0.2, 0.5, 0.3], layout.new_request_id(), 1.0)
    log.add_batch(multi, {"x": np.array([2.0])}, np.array([[0.6, 0.2, 0.2]]), layout.new_request_id(), 1.0)
    log.close()
    churn = read_all(tmp_path, "churn")
    assert churn.column("output").to_pylist() == [0.2, 0.5, 0.9]
    assert churn.column("label").to_pylist() == ["0", "0", "1"]  # 1 when P(class 1) is above 0.5, as answered
    wine = read_all(tmp_path, "wine")
    assert wine.column_names[-4:] == ["p.red", "p.white", "p.rose", "in.x"]
    rows = sorted(wine.to_pylist(), key=lambda r: r["in.x"])
    assert [(r["label"], r["output"]) for r in rows] == [("white", 0.5), ("red", 0.6)]
    assert (rows[0]["p.red"], rows[0]["p.white"], rows[0]["p.rose"]) == (0.2, 0.5, 0.3)


def write_rows(root: Path, model: str, version: str, at: datetime, extra: dict[str, list[Any]] | None = None,
               ids: list[str] | None = None) -> list[str]:
    ids = ids or [layout.new_request_id(int(at.timestamp() * 1000)) for _ in range(3)]
    table = pa.table({"request_id": ids, "ts": pa.array([at] * len(ids), layout.TIMESTAMP),
                      "model_name": [model] * len(ids), "model_version": [version] * len(ids),
                      "alias": ["production"] * len(ids), "latency_ms": [1.0] * len(ids),
                      "output": [0.5] * len(ids), "label": ["1"] * len(ids), **(extra or {})})
    layout.write_part(root, layout.PREDICTIONS, model, at.date(), table)
    return ids


def write_feedback(root: Path, model: str, pairs: list[tuple[str, str]], at: datetime) -> None:
    table = pa.table({"request_id": [i for i, _ in pairs], "actual": [a for _, a in pairs],
                      "ts": pa.array([at] * len(pairs), layout.TIMESTAMP)}, schema=layout.FEEDBACK_SCHEMA)
    layout.write_part(root, layout.FEEDBACK, model, at.date(), table)


def test_reads_keep_to_the_window_the_versions_and_the_columns(tmp_path: Path) -> None:
    old = NOW - timedelta(days=3)
    write_rows(tmp_path, "m", "1", old, {"in.Age": [1.0, 2.0, 3.0]})
    recent = write_rows(tmp_path, "m", "2", NOW - timedelta(minutes=5), {"in.Age": [4.0, 5.0, 6.0],
                                                                          "in.Deck": ["A", "B", None]})
    write_rows(tmp_path, "other", "1", NOW)
    window = store.predictions(tmp_path, "m", NOW - timedelta(hours=1), NOW)
    assert sorted(window.column("request_id").to_pylist()) == sorted(recent)
    everything = store.predictions(tmp_path, "m", NOW - timedelta(days=7), NOW)
    assert everything.num_rows == 6 and everything.column("in.Deck").null_count == 4  # version 1 had no Deck
    assert everything.column("ts").to_pylist() == sorted(everything.column("ts").to_pylist())
    only_one = store.predictions(tmp_path, "m", NOW - timedelta(days=7), NOW, columns=["in.Age", "nothing"],
                                 versions=["1"])
    assert only_one.column_names == ["in.Age"] and only_one.column("in.Age").to_pylist() == [1.0, 2.0, 3.0]
    empty = store.predictions(tmp_path, "nobody", NOW - timedelta(days=7), NOW)
    assert empty.num_rows == 0 and empty.schema == store.PREDICTION_BASE


def test_labelled_joins_the_first_feedback_and_known_ids_find_logged_rows(tmp_path: Path) -> None:
    ids = write_rows(tmp_path, "m", "1", NOW - timedelta(minutes=10))
    write_feedback(tmp_path, "m", [(ids[0], "1"), (ids[1], "0")], NOW - timedelta(minutes=5))
    write_feedback(tmp_path, "m", [(ids[0], "0")], NOW - timedelta(minutes=1))  # a later one never overwrites
    table = store.labelled(tmp_path, "m", NOW - timedelta(hours=1), NOW)
    assert dict(zip(table.column("request_id").to_pylist(), table.column("actual").to_pylist())) == {
        ids[0]: "1", ids[1]: "0"}
    assert store.feedback(tmp_path, "m").num_rows == 3
    unknown = layout.new_request_id()
    assert store.known_request_ids(tmp_path, "m", [*ids, unknown]) == set(ids)
    assert store.known_request_ids(tmp_path, "other", ids) == set()
    assert store.answered_request_ids(tmp_path, "m", ids) == {ids[0], ids[1]}


def test_retention_removes_whole_dates_older_than_the_retention(tmp_path: Path) -> None:
    for days in (0, 1, 29, 31, 40):
        write_rows(tmp_path, "m", "1", NOW - timedelta(days=days))
    write_feedback(tmp_path, "m", [("0" * 18, "1")], NOW - timedelta(days=45))
    removed = store.remove_expired(tmp_path, 30, now=NOW)
    left = {layout.folder_date(f) for f in (tmp_path / "predictions" / "model=m").iterdir()}
    assert left == {(NOW - timedelta(days=d)).date() for d in (0, 1, 29)}
    assert len(removed) == 3 and list((tmp_path / "feedback" / "model=m").glob("date=*")) == []


def test_feedback_log_knows_what_it_has_not_written_yet(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path, flush_seconds=60, max_rows=10)
    assert log.add("m", [("a" * 18, "1"), ("b" * 18, "0")])
    assert log.pending(["a" * 18, "c" * 18]) == {"a" * 18}
    log.close()
    assert log.pending(["a" * 18]) == set()
    written = pq.read_table(next(tmp_path.rglob("*.parquet")))
    assert written.schema == layout.FEEDBACK_SCHEMA and written.column("actual").to_pylist() == ["1", "0"]


def test_date_folders_outside_the_range_are_not_read(tmp_path: Path) -> None:
    write_rows(tmp_path, "m", "1", datetime(2026, 1, 1, 12, tzinfo=UTC))
    write_rows(tmp_path, "m", "1", datetime(2026, 1, 3, 12, tzinfo=UTC))
    (tmp_path / "predictions" / "model=m" / "date=garbage").mkdir()
    assert len(layout.part_files(tmp_path, layout.PREDICTIONS, "m", date(2026, 1, 2), date(2026, 1, 3))) == 1
    assert len(layout.part_files(tmp_path, layout.PREDICTIONS, "m")) == 2
