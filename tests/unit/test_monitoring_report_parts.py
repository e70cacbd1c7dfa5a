"""The report's pieces on fixed data: windows, traffic buckets, live metrics (task.score on the joined
rows, intervals around them), explanation-drift words, simulated traffic as the API's requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlscope import task as tasks
from mlscope.errors import BadInput
from mlscope.monitoring.explanation_drift import words
from mlscope.monitoring.live_metrics import classes_of, live_metrics
from mlscope.monitoring.report import bucket_width, traffic, worst
from mlscope.monitoring.simulation import Source, drifted, requests, sample, truth_text
from mlscope.monitoring.window import parse_window


@pytest.mark.parametrize(("text", "span"), [("30m", timedelta(minutes=30)), ("24h", timedelta(hours=24)),
                                            ("7d", timedelta(days=7)), (" 90s ", timedelta(seconds=90)),
                                            ("1.5h", timedelta(minutes=90)), ("2W", timedelta(weeks=2))])
def test_windows_read_as_durations(text: str, span: timedelta) -> None:
    assert parse_window(text) == span


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "0m", "1y", "24 hours", "3h30m", "400d", "1e3h", "\n"])
def test_junk_windows_are_one_line_bad_input(text: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_window(text)
    assert caught.value.field == "window" and "\n" not in caught.value.message


def test_bucket_widths_are_round_and_at_most_48() -> None:
    assert bucket_width(timedelta(hours=24)) == timedelta(minutes=30)
    assert bucket_width(timedelta(minutes=30)) == timedelta(minutes=1)
    assert bucket_width(timedelta(days=7)) == timedelta(hours=6)
    for hours in (0.1, 1, 5, 24, 24 * 30, 24 * 366):
        assert timedelta(hours=hours) / bucket_width(timedelta(hours=hours)) <= 48


def test_traffic_counts_rows_and_requests_and_request_latency() -> None:
    until = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    since = until - timedelta(hours=1)
    at = pd.Timestamp(until - timedelta(minutes=10))
    frame = pd.DataFrame({
        "request_id": ["a1", "a2", "b-0", "b-1", "b-2", "c1"],
        "ts": [at, at, at + pd.Timedelta(minutes=6), at + pd.Timedelta(minutes=6), at + pd.Timedelta(minutes=6),
               pd.Timestamp(since + timedelta(minutes=3))],
        "latency_ms": [1.0, 3.0, 10.0, 10.0, 10.0, 5.0]})
    report = traffic(frame, since, until)
    assert report.predictions == 6 and report.requests == 4  # the batch b is one request of three rows
    assert report.latency_p50_ms == pytest.approx(np.percentile([1.0, 3.0, 10.0, 5.0], 50))
    assert report.latency_p99_ms == pytest.approx(np.percentile([1.0, 3.0, 10.0, 5.0], 99))
    assert sum(b.predictions for b in report.buckets) == 6 and len(report.buckets) == 12  # 5-minute buckets
    busy = [b for b in report.buckets if b.predictions]
    assert [b.predictions for b in busy] == [1, 2, 3]
    assert busy[2].latency_p50_ms == 10.0 and report.buckets[1].latency_p50_ms is None
    empty = traffic(frame.iloc[:0], since, until)
    assert empty.predictions == 0 and empty.latency_p99_ms is None and len(empty.buckets) == 12


def test_worst_status() -> None:
    assert worst([]) == "ok" and worst(["ok", "watch"]) == "watch" and worst(["watch", "alert", "ok"]) == "alert"


def _binary_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    actual = (rng.random(n) < p).astype(int).astype(str)
    return pd.DataFrame({"output": p, "label": np.where(p > 0.5, "1", "0"), "actual": actual})


def test_binary_live_metrics_equal_task_score_with_intervals_around_them() -> None:
    rows = _binary_rows(400, 1)
    metrics = live_metrics(tasks.BINARY, rows, classes_of(tasks.BINARY, rows), {"roc_auc": 0.84})
    expected = tasks.BINARY.score(rows["actual"].to_numpy(dtype=object),
                                  np.column_stack([1 - rows["output"], rows["output"]]), ["0", "1"])
    assert [m.name for m in metrics] == list(tasks.BINARY.metric_names)
    for metric in metrics:
        assert metric.value == pytest.approx(expected[metric.name], abs=1e-12)
        assert metric.low <= metric.value <= metric.high
        assert metric.higher_is_better is tasks.higher_is_better(metric.name)
    by_name = {m.name: m for m in metrics}
    assert by_name["roc_auc"].test_value == 0.84 and by_name["accuracy"].test_value is None
    assert 0.02 < by_name["roc_auc"].high - by_name["roc_auc"].low < 0.2


def test_binary_truth_may_name_the_model_classes() -> None:
    rows = _binary_rows(50, 2)
    named = rows.assign(actual=rows["actual"].map({"0": "no", "1": "yes"}))
    plain = live_metrics(tasks.BINARY, rows, ("0", "1"), {}, resamples=10)
    renamed = live_metrics(tasks.BINARY, named, ("0", "1"), {}, model_classes=["no", "yes"], resamples=10)
    assert [m.value for m in plain] == [m.value for m in renamed]


def test_multiclass_and_regression_live_metrics_follow_their_task() -> None:
    rng = np.random.default_rng(3)
    proba = rng.dirichlet([1, 1, 1], size=300)
    classes = ["class_0", "class_1", "class_2"]
    truth = np.array(classes, dtype=object)[rng.integers(0, 3, 300)]
    frame = pd.DataFrame({f"p.{c}": proba[:, i] for i, c in enumerate(classes)}).assign(actual=truth)
    metrics = {m.name: m for m in live_metrics(tasks.MULTICLASS, frame, classes_of(tasks.MULTICLASS, frame), {},
                                              resamples=30)}
    expected = tasks.MULTICLASS.score(truth, proba, classes)
    assert set(metrics) == set(expected) and "recall_class_class_2" in metrics
    assert all(metrics[k].value == pytest.approx(v) for k, v in expected.items())

    prediction = rng.normal(100, 20, 200)
    actual = prediction + rng.normal(0, 5, 200)
    frame = pd.DataFrame({"output": prediction, "actual": [f"{v:.6f}" for v in actual]})
    found = {m.name: m for m in live_metrics(tasks.REGRESSION, frame, (), {"rmse": 4.0}, resamples=30)}
    assert found["rmse"].value == pytest.approx(np.sqrt(np.mean((np.round(actual, 6) - prediction) ** 2)))
    assert found["rmse"].higher_is_better is False and found["r2"].higher_is_better is True
    assert found["rmse"].test_value == 4.0


def test_one_labelled_row_has_values_but_no_interval() -> None:
    rows = _binary_rows(1, 4)
    metrics = {m.name: m for m in live_metrics(tasks.BINARY, rows, ("0", "1"), {})}
    assert metrics["accuracy"].value in (0.0, 1.0) and metrics["accuracy"].low is None
    assert metrics["roc_auc"].value is None  # undefined with one class: null, never a number


def test_explanation_drift_words() -> None:
    assert words("Fare", 2.2) == "Fare matters 2.2× as much as at training"
    assert words("Age", 1.02) == "Age matters as much as at training"
    assert words("Sex", 0.5) == "Sex matters 0.5× as much as at training"
    assert words("Parch", None) == "Parch did not matter at training and does now"


def _passengers() -> Source:
    rng = np.random.default_rng(0)
    n = 400
    rows = pd.DataFrame({"Pclass": rng.choice([1, 2, 3], n, p=[0.25, 0.25, 0.5]),
                         "Sex": rng.choice(["male", "female"], n),
                         "Age": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(1, 70, n)),
                         "SibSp": rng.integers(0, 3, n), "Parch": rng.integers(0, 3, n), "Fare": rng.uniform(5, 200, n),
                         "Embarked": rng.choice(["S", "C", "Q", None], n)})
    return Source(rows, truth_text(pd.Series(rng.integers(0, 2, n))), "test passengers")


def test_drifted_passengers_are_third_class_and_older_and_keep_their_truth() -> None:
    source = _passengers()
    rows, shift = drifted(source, 2000, np.random.default_rng(1))
    assert shift.features == ("Pclass", "Age")
    assert (rows.rows["Pclass"] == 3).mean() == pytest.approx(0.75, abs=0.03)
    assert rows.rows["Age"].mean() > source.rows["Age"].mean() + 12
    assert set(rows.truth) <= {"0", "1"} and len(rows.truth) == 2000
    plain = sample(source, 2000, np.random.default_rng(1))
    assert (plain.rows["Pclass"] == 3).mean() == pytest.approx((source.rows["Pclass"] == 3).mean(), abs=0.03)


def test_other_models_shift_their_most_important_numeric_feature() -> None:
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.normal(10, 2, 500), "flag": rng.integers(0, 2, 500)})
    source = Source(rows, None, "numbers")
    moved, shift = drifted(source, 1000, np.random.default_rng(2), importance={"a": 0.1, "b": 0.3, "flag": 0.9})
    assert shift.features == ("b",)  # flag is binary: not shifted
    assert moved.rows["b"].mean() == pytest.approx(10 + 1.5 * rows["b"].std(), abs=0.3)
    assert moved.rows["a"].mean() == pytest.approx(0, abs=0.15) and moved.truth is None


def test_rows_become_requests_typed_as_the_schema_asks() -> None:
    from mlscope.serving.contract import Passenger

    rows = pd.DataFrame({"Pclass": [3, 1], "Sex": ["male", "female"], "Age": [np.nan, 30.5], "SibSp": [1, 0],
                         "Parch": [0, 2], "Fare": [7.25, np.nan], "Embarked": ["S", None]})
    bodies = requests(rows, Passenger.model_json_schema())
    assert bodies[0] == {"pclass": 3, "sex": "male", "age": None, "sibsp": 1, "parch": 0, "fare": 7.25,
                         "embarked": "S"}
    assert type(bodies[1]["pclass"]) is int and bodies[1]["fare"] is None and bodies[1]["embarked"] is None
    for body in bodies:
        Passenger.model_validate(body)
    assert truth_text(pd.Series([1.0, 0.0, 151.25, None, "class_2"], dtype=object)).tolist() == [
        "1", "0", "151.25", None, "class_2"]


def test_many_labelled_rows_give_the_same_interval_from_fewer_rows_per_resample() -> None:
    rows = _binary_rows(10_000, 5)
    full = {m.name: m for m in live_metrics(tasks.BINARY, rows, ("0", "1"), {}, max_rows=10_000, resamples=60)}
    fast = {m.name: m for m in live_metrics(tasks.BINARY, rows, ("0", "1"), {}, max_rows=1_000, resamples=60)}
    for name in ("accuracy", "roc_auc", "log_loss"):
        assert fast[name].value == full[name].value
        width_full, width_fast = full[name].high - full[name].low, fast[name].high - fast[name].low
        assert width_fast == pytest.approx(width_full, rel=0.3), name
        assert fast[name].low < fast[name].value < fast[name].high


def test_live_metrics_are_remembered_for_the_same_rows_only() -> None:
    import time

    rows = _binary_rows(3000, 6)
    started = time.perf_counter()
    first = live_metrics(tasks.BINARY, rows, ("0", "1"), {}, resamples=40)
    computed = time.perf_counter() - started
    started = time.perf_counter()
    again = live_metrics(tasks.BINARY, rows, ("0", "1"), {}, resamples=40)
    assert again == first and time.perf_counter() - started < computed / 4
    again[0].value = -1.0  # a caller's copy: the remembered result stays
    assert live_metrics(tasks.BINARY, rows, ("0", "1"), {}, resamples=40) == first
    changed = rows.assign(actual=rows["actual"].where(rows.index != 0, "1" if rows["actual"][0] == "0" else "0"))
    assert live_metrics(tasks.BINARY, changed, ("0", "1"), {}, resamples=40) != first
