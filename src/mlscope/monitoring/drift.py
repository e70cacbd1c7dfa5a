"""Drift of a model's live inputs and outputs against its training reference, one feature at a time.

Per numeric feature: PSI over ten bins cut at the reference's deciles (plus a bin for missing values when
either side has one), the two-sample Kolmogorov-Smirnov test on the present values (statistic and p-value
as scipy.stats.ks_2samp with method="auto": exact while both samples have at most 10,000 rows, else the
asymptotic Kolmogorov distribution `kstwo` at n = round(m·n / (m + n))), the Wasserstein-1 distance and the
missing rates. Per categorical feature: PSI over the categories (missing is a category of its own) and the
chi-squared test of the reference-vs-live count table as scipy.stats.chi2_contingency.

A feature's status is "ok" unless its test rejects "same distribution" at the p-value threshold; then PSI
at or above the watch/alert threshold makes it "watch"/"alert". For a numeric feature a change of its missing
rate (chi-squared on present/missing counts) also counts as a rejection: KS sees only the present values.
The table's status is its worst feature's (the model's output included).

Everything works on sorted arrays and counts: one sort of each live column, then binary searches of the
few thousand reference points into it, so a million live rows cost about one numpy sort per feature.
`window_drift` reads a window of the prediction log with DuckDB (categorical counts and missing rates are
aggregated there; only numeric columns come back as arrays)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mlscope.config import Settings
    from mlscope.monitoring.reference import Reference

Status = Literal["ok", "watch", "alert", "no_data"]
Kind = Literal["numeric", "categorical"]
SEVERITY: dict[str, int] = {"no_data": -1, "ok": 0, "watch": 1, "alert": 2}
PSI_BINS = 10
PSI_FLOOR = 1e-4  # the share an empty bin counts as (ln 0 is undefined); Evidently's choice too
EXACT_KS_ROWS = 10_000  # scipy.stats.ks_2samp(method="auto") is exact up to this many rows per sample
MISSING = None  # the categorical count key of a missing value
PREDICTION = "prediction"
INPUT_PREFIX = "in."


@dataclass(frozen=True)
class Thresholds:
    """When a feature is flagged: its test's p-value below `p_value`, and PSI at least `watch_psi` (watch)
    or `alert_psi` (alert)."""

    watch_psi: float = 0.1
    alert_psi: float = 0.25
    p_value: float = 0.01

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(settings.drift_watch_psi, settings.drift_alert_psi, settings.drift_p_value)

    def status(self, psi: float | None, p_values: Iterable[float | None]) -> Status:
        if psi is None or not any(p is not None and p < self.p_value for p in p_values):
            return "ok"
        if psi >= self.alert_psi:
            return "alert"
        return "watch" if psi >= self.watch_psi else "ok"


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or the model output's) drift. Statistics that cannot be computed are None."""

    feature: str
    kind: Kind
    psi: float | None
    test: Literal["ks", "chi2"]
    statistic: float | None
    p_value: float | None
    wasserstein: float | None
    missing_reference: float | None
    missing_live: float | None
    status: Status
    missing_p_value: float | None = None  # numeric only: chi-squared of present/missing counts

    def to_dict(self) -> dict[str, Any]:
        """The production report's shape (missing_p_value is an attribute only)."""
        return {"feature": self.feature, "kind": self.kind, "psi": self.psi, "test": self.test,
                "statistic": self.statistic, "p_value": self.p_value, "wasserstein": self.wasserstein,
                "missing_reference": self.missing_reference, "missing_live": self.missing_live,
                "status": self.status}


@dataclass(frozen=True)
class DriftTable:
    """Drift of one version's live rows in a window against its reference."""

    version: str
    rows: int
    reference_rows: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> Status:
        if self.rows == 0:
            return "no_data"
        every = [*self.features, *([self.prediction] if self.prediction else [])]
        return max((f.status for f in every), key=SEVERITY.__getitem__, default="ok")

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "rows": self.rows, "reference_rows": self.reference_rows,
                "features": [f.to_dict() for f in self.features],
                "prediction": self.prediction.to_dict() if self.prediction else None}


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def psi(reference_counts: Sequence[float], live_counts: Sequence[float]) -> float:
    """Population stability index Σ (live − ref) · ln(live / ref) over bins, each share floored at PSI_FLOOR."""
    ref = np.asarray(reference_counts, dtype=float)
    live = np.asarray(live_counts, dtype=float)
    ref_share = np.maximum(ref / ref.sum(), PSI_FLOOR)
    live_share = np.maximum(live / live.sum(), PSI_FLOOR)
    return float(np.sum((live_share - ref_share) * np.log(live_share / ref_share)))


def decile_edges(reference_present: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """The inner bin edges: the reference's quantiles at 1/bins … (bins-1)/bins, repeats dropped (a feature
    with few distinct values gets fewer bins). Bins are (-inf, e1], (e1, e2], …, (ek, inf)."""
    if reference_present.size == 0:
        return np.empty(0)
    return np.unique(np.quantile(reference_present, np.linspace(0, 1, bins + 1)[1:-1]))


def _bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    at_or_below = np.searchsorted(sorted_values, edges, side="right")
    return np.diff(np.concatenate([[0], at_or_below, [sorted_values.size]]))


def ks_statistic(reference_sorted: np.ndarray, live_sorted: np.ndarray) -> float:
    """sup |F_ref − F_live| of the two empirical CDFs, from the live CDF at each distinct reference value and
    just below it: F_ref is constant between its values and F_live monotone, so the supremum is at one of
    those points (the same number scipy computes over all pooled points)."""
    m, n = reference_sorted.size, live_sorted.size
    values = np.unique(reference_sorted)
    ref_at = np.searchsorted(reference_sorted, values, side="right") / m
    ref_before = np.concatenate([[0.0], ref_at[:-1]])
    live_at = np.searchsorted(live_sorted, values, side="right") / n
    live_before = np.searchsorted(live_sorted, values, side="left") / n
    return float(max(np.max(np.abs(live_at - ref_at)), np.max(np.abs(live_before - ref_before))))


def ks_test(reference_sorted: np.ndarray, live_sorted: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) as scipy.stats.ks_2samp(reference, live) with method="auto"."""
    m, n = reference_sorted.size, live_sorted.size
    if max(m, n) <= EXACT_KS_ROWS:  # small: scipy's exact distribution itself
        result = stats.ks_2samp(reference_sorted, live_sorted, method="auto")
        return float(result.statistic), float(result.pvalue)
    d = ks_statistic(reference_sorted, live_sorted)
    big, small = sorted([float(m), float(n)], reverse=True)
    return d, float(np.clip(stats.kstwo.sf(d, np.round(big * small / (big + small))), 0, 1))


def _integral_below(live_sorted: np.ndarray, prefix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """∫_{-inf}^{x} F_live(t) dt at each x: (1/n) Σ_{l ≤ x} (x − l)."""
    count = np.searchsorted(live_sorted, points, side="right")
    return (count * points - prefix[count]) / live_sorted.size


def wasserstein(reference_sorted: np.ndarray, live_sorted: np.ndarray) -> float:
    """Wasserstein-1 distance ∫ |F_ref − F_live| (scipy.stats.wasserstein_distance), in closed form per
    interval between reference values: F_ref is constant there, and the integral of the monotone F_live
    comes from prefix sums of the sorted live values, split where F_live crosses F_ref."""
    shift = float(np.median(reference_sorted))  # smaller sums, smaller rounding
    ref = reference_sorted - shift
    live = live_sorted - shift
    m, n = ref.size, live.size
    prefix = np.concatenate([[0.0], np.cumsum(live)])
    values = np.unique(ref)
    ref_counts = np.searchsorted(ref, values, side="right")  # F_ref on [values[j], values[j+1]) is counts[j]/m

    def below(points: np.ndarray) -> np.ndarray:
        return _integral_below(live, prefix, points)

    total = float(below(values[:1])[0])  # (-inf, first reference value): F_ref = 0
    starts, ends, counts = values[:-1], values[1:], ref_counts[:-1]
    if starts.size:
        level = counts / m
        needed = -(-counts * n // m)  # live rows at or below x for F_live(x) >= level, integer ceil
        crossing = live[np.clip(needed - 1, 0, n - 1)]
        crossing = np.where(needed <= 0, -np.inf, np.where(needed > n, np.inf, crossing))
        cross = np.clip(crossing, starts, ends)
        at_start, at_cross, at_end = below(starts), below(cross), below(ends)
        total += float(np.sum(level * (cross - starts) - (at_cross - at_start)
                              + (at_end - at_cross) - level * (ends - cross)))
    last = values[-1]
    top = max(float(live[-1]), float(last))  # [last reference value, inf): F_ref = 1
    total += (top - last) - float(below(np.array([top]))[0] - below(np.array([last]))[0])
    return total


def _missing_p_value(ref_present: int, ref_missing: int, live_present: int, live_missing: int) -> float | None:
    if ref_missing + live_missing == 0 or ref_present + live_present == 0:
        return None
    table = np.array([[ref_present, ref_missing], [live_present, live_missing]])
    return float(stats.chi2_contingency(table).pvalue)


@dataclass(frozen=True)
class NumericSide:
    """One side's numeric column: its present values sorted and its missing count."""

    present_sorted: np.ndarray
    missing: int

    @classmethod
    def of(cls, values: np.ndarray) -> NumericSide:
        values = np.asarray(values, dtype=float)
        present = values[~np.isnan(values)]
        present.sort()  # in place: `present` is already a copy
        return cls(present, int(values.size - present.size))

    @property
    def rows(self) -> int:
        return int(self.present_sorted.size) + self.missing


def numeric_drift(feature: str, reference: NumericSide | np.ndarray, live: NumericSide | np.ndarray,
                  thresholds: Thresholds = Thresholds()) -> FeatureDrift:
    """Drift of one numeric column (NaN = missing)."""
    ref = reference if isinstance(reference, NumericSide) else NumericSide.of(reference)
    now = live if isinstance(live, NumericSide) else NumericSide.of(live)
    if now.rows == 0 or ref.rows == 0:
        return FeatureDrift(feature, "numeric", None, "ks", None, None, None,
                            ref.missing / ref.rows if ref.rows else None, None, "no_data")
    r, x = ref.present_sorted, now.present_sorted
    edges = decile_edges(r)
    ref_bins, live_bins = _bin_counts(r, edges), _bin_counts(x, edges)
    if ref.missing or now.missing:
        ref_bins, live_bins = np.append(ref_bins, ref.missing), np.append(live_bins, now.missing)
    value = psi(ref_bins, live_bins)
    statistic = p_value = distance = None
    if r.size and x.size:
        statistic, p_value = ks_test(r, x)
        distance = wasserstein(r, x)
    missing_p = _missing_p_value(r.size, ref.missing, x.size, now.missing)
    return FeatureDrift(feature, "numeric", _number(value), "ks", _number(statistic), p_value,
                        _number(distance), ref.missing / ref.rows,
                        now.missing / now.rows, thresholds.status(value, (p_value, missing_p)), missing_p)


def counts_of(values: Iterable[Any]) -> dict[str | None, int]:
    """Category counts, values as text, every missing value (None, NaN) under MISSING."""
    counts: dict[str | None, int] = {}
    for value in values:
        key = MISSING if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
        counts[key] = counts.get(key, 0) + 1
    return counts


def categorical_drift(feature: str, reference: Mapping[str | None, int], live: Mapping[str | None, int],
                      thresholds: Thresholds = Thresholds()) -> FeatureDrift:
    """Drift of one categorical column from its category counts (key MISSING = missing values)."""
    ref_rows, live_rows = sum(reference.values()), sum(live.values())
    ref_missing = reference.get(MISSING, 0) / ref_rows if ref_rows else None
    if ref_rows == 0 or live_rows == 0:
        return FeatureDrift(feature, "categorical", None, "chi2", None, None, None, ref_missing, None, "no_data")
    categories = sorted({k for k in (*reference, *live) if k is not MISSING}) + (
        [MISSING] if MISSING in reference or MISSING in live else [])
    table = np.array([[reference.get(c, 0) for c in categories], [live.get(c, 0) for c in categories]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.chi2_contingency(table)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    value = psi(table[0], table[1])
    return FeatureDrift(feature, "categorical", _number(value), "chi2", _number(statistic), p_value, None,
                        ref_missing, live.get(MISSING, 0) / live_rows, thresholds.status(value, (p_value,)))


# ---- whole tables --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveColumns:
    """A window's live data as drift needs it: numeric columns as arrays (NaN = missing), categorical
    columns as counts. Keys are log column names (in.<feature>, output, label)."""

    rows: int
    numeric: dict[str, np.ndarray]
    categorical: dict[str, dict[str | None, int]]


def _parallel(jobs: list[Any]) -> list[FeatureDrift]:
    """Numeric features in threads: numpy's sort and searches release the GIL."""
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: job(), jobs))


def compare(reference: Reference, live: LiveColumns, version: str,
            thresholds: Thresholds = Thresholds()) -> DriftTable:
    """The drift table of `live` against `reference` (features in the reference's order, then the output)."""
    problems: list[str] = []
    columns = [(feature, INPUT_PREFIX + feature, kind) for feature, kind in reference.features.items()]
    predicted = reference.prediction_column
    if predicted is None:
        problems.append(f"prediction drift: {reference.prediction_problem}")
    else:
        columns.append((PREDICTION, *predicted))
    jobs = []
    for name, column, kind in columns:
        if kind == "numeric":
            ref_values = reference.numeric_side(column)
            jobs.append(lambda name=name, column=column, ref_values=ref_values: numeric_drift(
                name, ref_values, live.numeric[column], thresholds))
        else:
            ref_counts = reference.category_counts(column)
            jobs.append(lambda name=name, column=column, ref_counts=ref_counts: categorical_drift(
                name, ref_counts, live.categorical[column], thresholds))
    results = _parallel(jobs)
    prediction = results.pop() if predicted is not None else None
    return DriftTable(version, live.rows, reference.rows, results, prediction, problems)


def frame_drift(reference: Reference, live: pd.DataFrame | pa.Table, version: str,
                thresholds: Thresholds = Thresholds()) -> DriftTable:
    """Drift of rows already in memory (log columns: in.<feature>, output, label)."""
    import pyarrow as pa

    table = live if isinstance(live, pa.Table) else pa.Table.from_pandas(live, preserve_index=False)
    numeric, categorical = {}, {}
    for column, kind in reference.log_columns().items():
        present = column in table.column_names
        if kind == "numeric":
            numeric[column] = (table[column].cast(pa.float64()).to_numpy(zero_copy_only=False) if present
                               else np.full(table.num_rows, np.nan))
        else:
            categorical[column] = (counts_of(table[column].to_pylist()) if present
                                   else {MISSING: table.num_rows} if table.num_rows else {})
    return compare(reference, LiveColumns(table.num_rows, numeric, categorical), version, thresholds)


# ---- the prediction log, read with DuckDB ------------------------------------------------------------

def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


_DATE_FOLDER = re.compile(r"date=(\d{4}-\d{2}-\d{2})$")


def log_files(folder: Path, model: str, since: datetime, until: datetime) -> list[str]:
    """The prediction log's part files of `model` in the date folders that [since, until) touches."""
    root = Path(folder) / "predictions" / f"model={quote(model, safe='')}"
    if not root.is_dir():
        return []
    first, last = _utc(since).date(), _utc(until).date()
    files: list[str] = []
    for day in sorted(root.iterdir()):
        found = _DATE_FOLDER.match(day.name)
        if found and first <= date.fromisoformat(found.group(1)) <= last:
            files.extend(str(path) for path in sorted(day.glob("*.parquet")))
    return files


def read_live(folder: Path, model: str, version: str, since: datetime, until: datetime,
              columns: Mapping[str, Kind]) -> LiveColumns:
    """One version's logged rows in [since, until): numeric `columns` as float arrays, categorical ones as
    counts (one GROUP BY GROUPING SETS scan in DuckDB, which also counts the rows). A column no part file
    has is missing on every row."""
    import duckdb

    numeric_columns = [c for c, kind in columns.items() if kind == "numeric"]
    categorical_columns = [c for c, kind in columns.items() if kind == "categorical"]
    files = log_files(folder, model, since, until)
    if not files:
        return LiveColumns(0, {c: np.empty(0) for c in numeric_columns}, {c: {} for c in categorical_columns})
    source = "read_parquet(?, hive_partitioning = true, union_by_name = true)"
    window = "WHERE model_version = ? AND ts >= ? AND ts < ?"
    params = [files, str(version), _utc(since), _utc(until)]
    con = duckdb.connect()
    try:
        types = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {source}", [files]).fetchall()}

        def typed(column: str, sql_type: str) -> str:
            if column not in types:
                return f"NULL::{sql_type} AS {_identifier(column)}"
            if types[column] == sql_type:
                return _identifier(column)
            return f"TRY_CAST({_identifier(column)} AS {sql_type}) AS {_identifier(column)}"

        names = [_identifier(c) for c in categorical_columns]
        counted = con.execute(
            f"SELECT {', '.join([*(f'GROUPING({n})' for n in names), *names, 'count(*)'])} "
            f"FROM (SELECT {', '.join([typed(c, 'VARCHAR') for c in categorical_columns] or ['1 AS one'])} "
            f"FROM {source} {window}) GROUP BY GROUPING SETS ({', '.join(['()', *(f'({n})' for n in names)])})",
            params).fetchall()
        rows, categorical = 0, {c: {} for c in categorical_columns}
        k = len(categorical_columns)
        for record in counted:
            grouped = [i for i in range(k) if record[i] == 0]
            if grouped:
                categorical[categorical_columns[grouped[0]]][record[k + grouped[0]]] = int(record[-1])
            else:
                rows = int(record[-1])
        numeric: dict[str, np.ndarray] = {}
        if numeric_columns:
            table = con.execute(f"SELECT {', '.join(typed(c, 'DOUBLE') for c in numeric_columns)} "
                                f"FROM {source} {window}", params).to_arrow_table()
            numeric = {c: table[c].to_numpy() for c in numeric_columns}
    finally:
        con.close()
    return LiveColumns(rows, numeric, categorical)


def window_drift(folder: Path, model: str, version: str, since: datetime, until: datetime, reference: Reference,
                 thresholds: Thresholds = Thresholds()) -> DriftTable:
    """The drift table of version `version` of `model` over [since, until), straight from the prediction
    log under `folder` (settings.monitor_dir)."""
    live = read_live(folder, model, version, since, until, reference.log_columns())
    return compare(reference, live, version, thresholds)

