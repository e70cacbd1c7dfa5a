"""Drift statistics against scipy and a hand-computed PSI, statuses, false alarms over seeds, and the
DuckDB read of the prediction log's Parquet part files."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from mlscope.monitoring import drift
from mlscope.monitoring.drift import MISSING, Thresholds, categorical_drift, numeric_drift
from mlscope.monitoring.reference import FORMAT, Reference, prediction_of
from tests import titanic_like


def _sorted(values: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(values, dtype=float))


SAMPLES = {
    "small, exact p-value": (np.random.default_rng(1).normal(size=40), np.random.default_rng(2).normal(0.3, size=55)),
    "exact at 10,000 rows": (np.random.default_rng(3).normal(size=3000), np.random.default_rng(4).normal(size=10_000)),
    "large, asymptotic": (np.random.default_rng(5).normal(size=5000), np.random.default_rng(6).normal(0.02, size=60_000)),
    "ties (whole numbers)": (np.random.default_rng(7).poisson(1.0, 800).astype(float),
                             np.random.default_rng(8).poisson(1.1, 30_000).astype(float)),
    "skewed, live outside reference": (np.random.default_rng(9).lognormal(2, 1, 500),
                                       np.random.default_rng(10).lognormal(2.2, 1.3, 20_000)),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_ks_equals_scipy_ks_2samp(name: str) -> None:
    reference, live = SAMPLES[name]
    expected = stats.ks_2samp(reference, live)  # method="auto"
    statistic, p_value = drift.ks_test(_sorted(reference), _sorted(live))
    assert statistic == pytest.approx(float(expected.statistic), abs=1e-12)
    assert p_value == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-300)
    assert drift.ks_statistic(_sorted(reference), _sorted(live)) == pytest.approx(float(expected.statistic), abs=1e-12)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_wasserstein_equals_scipy(name: str) -> None:
    reference, live = SAMPLES[name]
    assert drift.wasserstein(_sorted(reference), _sorted(live)) == pytest.approx(
        stats.wasserstein_distance(reference, live), rel=1e-9, abs=1e-12)


def test_numeric_drift_tests_present_values_and_counts_missing_ones() -> None:
    reference, live = SAMPLES["ties (whole numbers)"]
    reference, live = reference.copy(), live.copy()
    reference[:80] = np.nan  # 10% missing
    live[:9000] = np.nan  # 30% missing
    result = numeric_drift("SibSp", reference, live)
    expected = stats.ks_2samp(reference[80:], live[9000:])
    assert result.statistic == pytest.approx(float(expected.statistic), abs=1e-12)
    assert result.p_value == pytest.approx(float(expected.pvalue), rel=1e-9)
    assert result.missing_reference == pytest.approx(0.1) and result.missing_live == pytest.approx(0.3)
    assert result.missing_p_value == pytest.approx(
        stats.chi2_contingency([[720, 80], [21_000, 9000]]).pvalue, rel=1e-9)
    assert result.status == "watch" or result.status == "alert"  # 10% → 30% missing is drift


def test_chi2_equals_scipy_chi2_contingency_with_missing_and_unseen_categories() -> None:
    reference = {"S": 500, "C": 120, "Q": 60, MISSING: 2}
    live = {"S": 300, "C": 140, "Q": 20, "X": 5}  # a category training never saw; no missing values
    result = categorical_drift("Embarked", reference, live)
    table = [[120, 60, 500, 0, 2], [140, 20, 300, 5, 0]]  # categories sorted, missing last
    expected = stats.chi2_contingency(table)
    assert result.test == "chi2"
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert result.missing_reference == pytest.approx(2 / 682) and result.missing_live == 0.0


def test_two_categories_use_scipys_yates_correction() -> None:
    result = categorical_drift("Sex", {"male": 60, "female": 40}, {"male": 45, "female": 55})
    expected = stats.chi2_contingency([[40, 60], [55, 45]])  # 2x2: scipy applies Yates' correction
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert expected.statistic < stats.chi2_contingency([[40, 60], [55, 45]], correction=False).statistic


def test_numeric_psi_equals_a_hand_computation() -> None:
    reference = np.arange(1.0, 11.0)  # deciles (linear): 1.9, 2.8, ..., 9.1: one reference value per bin
    live = np.array([1, 1, 1, 1, 2, 2, 3, 4, 5, 10], dtype=float)
    # live shares per bin: 0.4, 0.2, 0.1, 0.1, 0.1, 0, 0, 0, 0, 0.1; reference: 0.1 each; empty → 1e-4
    expected = (0.3 * math.log(4) + 0.1 * math.log(2) + 3 * 0.0
                + 4 * (0.0001 - 0.1) * math.log(0.0001 / 0.1) + 0.0)
    assert drift.decile_edges(reference) == pytest.approx([1.9, 2.8, 3.7, 4.6, 5.5, 6.4, 7.3, 8.2, 9.1])
    assert numeric_drift("x", reference, live).psi == pytest.approx(expected, rel=1e-12)


def test_numeric_psi_adds_a_missing_bin() -> None:
    reference = np.arange(1.0, 11.0)
    live = np.array([1, 2, 3, 4, 5, 6, 7, 8, np.nan, np.nan])
    # present live values fill bins 0..7 with 0.1 each; bins 8, 9 empty; missing: live 0.2, reference 0 (→ 1e-4)
    expected = 2 * (0.0001 - 0.1) * math.log(0.0001 / 0.1) + (0.2 - 0.0001) * math.log(0.2 / 0.0001)
    assert numeric_drift("x", reference, live).psi == pytest.approx(expected, rel=1e-12)


def test_categorical_psi_equals_a_hand_computation() -> None:
    result = categorical_drift("Sex", {"male": 50, "female": 50}, {"male": 80, "female": 20})
    assert result.psi == pytest.approx(0.3 * math.log(0.8 / 0.5) + (-0.3) * math.log(0.2 / 0.5), rel=1e-12)


def test_status_needs_both_the_psi_threshold_and_a_rejecting_test() -> None:
    rule = Thresholds(watch_psi=0.1, alert_psi=0.25, p_value=0.01)
    assert rule.status(0.5, (0.2,)) == "ok"  # large PSI, but the test does not reject: noise of a small window
    assert rule.status(0.05, (1e-12,)) == "ok"  # significant but small: a large window sees tiny changes
    assert rule.status(0.1, (0.009,)) == "watch"
    assert rule.status(0.25, (0.009,)) == "alert"
    assert rule.status(0.3, (None, 0.001)) == "alert"  # the missing-rate test alone rejects
    assert rule.status(None, (0.0,)) == "ok"


def _reference(rows: int = 5000, seed: int = 10_000) -> Reference:
    meta = {"format": FORMAT, "source": "training", "task": "binary", "classes": ["0", "1"],
            "features": titanic_like.FEATURES, "rows": rows, "prediction": prediction_of(["0", "1"])}
    return Reference("run", meta, titanic_like.as_log(titanic_like.draw(rows, seed)))


def _flagged(table: drift.DriftTable) -> set[str]:
    return {f.feature for f in [*table.features, table.prediction] if f.status != "ok"}


@pytest.mark.parametrize(("rows", "most_tables"), [(150, 0.05), (2000, 0.01)])
def test_undrifted_streams_rarely_alarm_even_where_psi_alone_would(rows: int, most_tables: float) -> None:
    """Each feature is flagged at most at the test's level (1%); a table of 8 columns somewhat more often
    in small windows (8 tests: at most 1 - 0.99^8 = 7.7% if they were independent and exact)."""
    reference = _reference()
    alarms = flagged = psi_only = 0
    seeds = range(200)
    for seed in seeds:
        table = drift.frame_drift(reference, titanic_like.as_log(titanic_like.draw(rows, seed)), "1")
        alarms += table.status != "ok"
        flagged += len(_flagged(table))
        psi_only += any(f.psi >= 0.1 for f in table.features)
    assert flagged / (len(seeds) * 8) <= 0.01, flagged
    assert alarms / len(seeds) <= most_tables, alarms
    if rows == 150:  # small windows are noisy: the test is what keeps alarms rare
        assert psi_only / len(seeds) >= 0.2, psi_only


def test_a_simulated_shift_is_flagged_on_the_shifted_features_only() -> None:
    reference = _reference()
    for seed in range(20):
        table = drift.frame_drift(reference, titanic_like.as_log(titanic_like.draw(3000, seed, shifted=True)), "1")
        statuses = {f.feature: f.status for f in table.features}
        assert {"Pclass", "Age"} <= _flagged(table), statuses
        assert {"Sex", "SibSp", "Parch", "Embarked"} & _flagged(table) == set(), statuses
        assert table.status in ("watch", "alert")


# ---- the prediction log on disk ------------------------------------------------------------------------

def _write_part(folder: Path, model: str, frame: pd.DataFrame, version: str, start: datetime, seq: int) -> None:
    from urllib.parse import quote

    rows = len(frame)
    ts = pa.array([start + timedelta(seconds=i) for i in range(rows)], type=pa.timestamp("ms", tz="UTC"))
    columns = {"request_id": pa.array([f"r{seq}-{i}" for i in range(rows)]), "ts": ts,
               "model_name": pa.array([model] * rows), "model_version": pa.array([version] * rows),
               "alias": pa.array(["production"] * rows), "latency_ms": pa.array(np.full(rows, 1.5)),
               "output": pa.array(frame["output"].to_numpy(), type=pa.float64()),
               "label": pa.array(np.where(frame["output"] > 0.5, "1", "0"))}
    for column in frame.columns.drop("output"):
        values = frame[column]
        columns[column] = (pa.array(values.to_numpy(dtype=float), type=pa.float64(), from_pandas=True)
                           if values.dtype.kind == "f" else pa.array([None if pd.isna(v) else v for v in values], type=pa.string()))
    day = folder / "predictions" / f"model={quote(model, safe='')}" / f"date={start.date().isoformat()}"
    day.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), day / f"part-{int(start.timestamp() * 1000)}-1-{seq}.parquet")


def test_window_drift_reads_the_logs_window_and_version_with_duckdb(tmp_path: Path) -> None:
    reference = _reference()
    model = "titanic survival/v2"  # percent-encoded in the folder name
    day = datetime(2026, 12, 3, 23, 0, tzinfo=timezone.utc)
    inside = [titanic_like.as_log(titanic_like.draw(400, seed, shifted=True)) for seed in (1, 2)]
    _write_part(tmp_path, model, inside[0], "3", day, 0)  # 23:00 → 23:06, Dec 3
    _write_part(tmp_path, model, inside[1], "3", day + timedelta(hours=1, minutes=30), 1)  # Dec 4
    _write_part(tmp_path, model, titanic_like.as_log(titanic_like.draw(300, 3)), "2", day, 2)  # other version
    _write_part(tmp_path, model, titanic_like.as_log(titanic_like.draw(300, 4)), "3", day - timedelta(days=2), 3)
    (tmp_path / "predictions" / "model=titanic%20survival%2Fv2" / "date=2026-12-04" / ".part-9-1-9.parquet.tmp"
     ).write_bytes(b"half a file")  # a writer's temporary file is never read
    since, until = day - timedelta(hours=1), day + timedelta(hours=3)

    table = drift.window_drift(tmp_path, model, "3", since, until, reference)
    expected = drift.frame_drift(reference, pd.concat(inside, ignore_index=True), "3")
    assert table.rows == 800 and table.reference_rows == 5000
    assert table.to_dict() == expected.to_dict()
    assert table.status in ("watch", "alert") and table.prediction is not None and table.prediction.feature == "prediction"
    assert drift.window_drift(tmp_path, model, "2", since, until, reference).rows == 300
    assert drift.window_drift(tmp_path, model, "3", since, day + timedelta(minutes=3), reference).rows == 180  # [since, until)


def test_window_drift_without_rows_or_columns(tmp_path: Path) -> None:
    reference = _reference()
    now = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)
    empty = drift.window_drift(tmp_path, "nobody", "1", now - timedelta(days=1), now, reference)
    assert empty.rows == 0 and empty.status == "no_data"
    assert {f.status for f in empty.features} == {"no_data"} and all(f.psi is None for f in empty.features)
    live = titanic_like.as_log(titanic_like.draw(500, 5)).drop(columns=["in.Embarked"])  # a model change
    _write_part(tmp_path, "m", live, "1", now - timedelta(hours=1), 0)
    table = drift.window_drift(tmp_path, "m", "1", now - timedelta(days=1), now, reference)
    embarked = next(f for f in table.features if f.feature == "Embarked")
    assert embarked.missing_live == 1.0 and embarked.status == "alert"
