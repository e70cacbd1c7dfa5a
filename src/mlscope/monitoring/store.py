"""Reading the prediction log and the feedback with DuckDB, and retention.

Only the part files whose date folder can hold the asked rows are read (the folders are the partitions),
all of them in one `read_parquet(files, union_by_name=true)`: versions with other inputs add columns,
null where a row's model did not have them. Every answer is a pyarrow Table, ordered by `ts`."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mlscope.monitoring import layout

PREDICTION_BASE = pa.schema([(layout.REQUEST_ID, pa.string()), (layout.TS, layout.TIMESTAMP),
                             (layout.MODEL_NAME, pa.string()), (layout.MODEL_VERSION, pa.string()),
                             (layout.ALIAS, pa.string()), (layout.LATENCY_MS, pa.float64()),
                             (layout.OUTPUT, pa.float64()), (layout.LABEL, pa.string())])
LABELLED_EXTRA = [(layout.ACTUAL, pa.string()), ("feedback_ts", layout.TIMESTAMP)]
# A row's date folder is that of its answer; its id carries its request's time, up to a long request earlier.
ID_DATE_SLACK = timedelta(hours=1)
# The part files given as the query's parameter; the folders are not read as columns (the rows carry them).
READ = "read_parquet(?, union_by_name = true, hive_partitioning = false)"


def _connect() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _timestamps(table: pa.Table) -> pa.Table:
    """DuckDB's timestamps (µs) as the log's (ms, UTC)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(index, field.name, table.column(index).cast(layout.TIMESTAMP))
    return table


def _available(connection: duckdb.DuckDBPyConnection, files: list[str]) -> list[str]:
    described = connection.execute(f"DESCRIBE SELECT * FROM {READ}", [files])
    return [row[0] for row in described.fetchall()]


def _empty(schema: pa.Schema, columns: Sequence[str] | None) -> pa.Table:
    fields = [field for field in schema if columns is None or field.name in columns]
    return pa.schema(fields).empty_table()


def predictions(folder: Path, model: str, since: datetime, until: datetime, columns: Sequence[str] | None = None,
                versions: Sequence[str] | None = None) -> pa.Table:
    """The logged predictions of `model` answered in [since, until), optionally of some `versions` only.
    `columns`: the columns wanted (those no part file has are left out); every column when None."""
    since, until = _utc(since), _utc(until)
    files = [str(f) for f in layout.part_files(folder, layout.PREDICTIONS, model, since.date(), until.date())]
    if not files:
        return _empty(PREDICTION_BASE, columns)
    with _connect() as connection:
        available = _available(connection, files)
        chosen = available if columns is None else [c for c in columns if c in available]
        if not chosen:
            return pa.table({})
        where = "ts >= ? AND ts < ?"
        parameters: list[Any] = [files, since, until]
        if versions is not None:
            where += " AND model_version IN (SELECT unnest(?))"
            parameters.append([str(v) for v in versions])
        selected = ", ".join(_quoted(c) for c in chosen)
        table = connection.execute(f"SELECT {selected} FROM {READ} "  # noqa: S608
                                   f"WHERE {where} ORDER BY ts", parameters).fetch_arrow_table()
    return _timestamps(table)


def feedback(folder: Path, model: str, since: datetime | None = None, until: datetime | None = None) -> pa.Table:
    """Every feedback row of `model` received in [since, until) (either end open), duplicates included."""
    since = None if since is None else _utc(since)
    until = None if until is None else _utc(until)
    files = [str(f) for f in layout.part_files(folder, layout.FEEDBACK, model, since and since.date(),
                                                until and until.date())]
    if not files:
        return layout.FEEDBACK_SCHEMA.empty_table()
    with _connect() as connection:
        table = connection.execute(
            f"SELECT request_id, actual, ts FROM {READ} "
            "WHERE (? IS NULL OR ts >= ?) AND (? IS NULL OR ts < ?) ORDER BY ts",
            [files, since, since, until, until]).fetch_arrow_table()
    return _timestamps(table)


def labelled(folder: Path, model: str, since: datetime, until: datetime) -> pa.Table:
    """The predictions answered in [since, until) that have feedback, each with the FIRST feedback
    received for its request id (`actual`, `feedback_ts`; later ones never overwrite it)."""
    since, until = _utc(since), _utc(until)
    predicted = [str(f) for f in layout.part_files(folder, layout.PREDICTIONS, model, since.date(), until.date())]
    answered = [str(f) for f in layout.part_files(folder, layout.FEEDBACK, model, since.date())]
    if not predicted or not answered:
        return pa.schema([*PREDICTION_BASE, *LABELLED_EXTRA]).empty_table()
    with _connect() as connection:
        table = connection.execute(
            f"WITH p AS (SELECT * FROM {READ} WHERE ts >= ? AND ts < ?), "
            "f AS (SELECT request_id, arg_min(actual, ts) AS actual, min(ts) AS feedback_ts "
            f"      FROM {READ} GROUP BY request_id) "
            "SELECT p.*, f.actual, f.feedback_ts FROM p JOIN f ON p.request_id = f.request_id ORDER BY p.ts",
            [predicted, since, until, answered]).fetch_arrow_table()
    return _timestamps(table)


def _id_days(request_ids: Iterable[str]) -> tuple[date, date] | None:
    times = [layout.request_time(request_id) for request_id in request_ids]
    if not times:
        return None
    return min(times).date(), (max(times) + ID_DATE_SLACK).date()


def _present(files: list[str], request_ids: list[str]) -> set[str]:
    if not files or not request_ids:
        return set()
    with _connect() as connection:
        rows = connection.execute(f"SELECT DISTINCT request_id FROM {READ} WHERE request_id IN (SELECT unnest(?))",
                                  [files, request_ids]).fetchall()
    return {row[0] for row in rows}


def known_request_ids(folder: Path, model: str, request_ids: Iterable[str]) -> set[str]:
    """Which of `request_ids` (well-formed ids) have a logged prediction of `model`; only the date
    folders their times point at are read."""
    ids = sorted(set(request_ids))
    days = _id_days(ids)
    if days is None:
        return set()
    files = layout.part_files(folder, layout.PREDICTIONS, model, *days)
    return _present([str(f) for f in files], ids)


def answered_request_ids(folder: Path, model: str, request_ids: Iterable[str]) -> set[str]:
    """Which of `request_ids` already have feedback written (feedback comes after its prediction: only
    date folders from the earliest id's date on are read)."""
    ids = sorted(set(request_ids))
    days = _id_days(ids)
    if days is None:
        return set()
    files = layout.part_files(folder, layout.FEEDBACK, model, days[0])
    return _present([str(f) for f in files], ids)


def remove_expired(folder: Path, retention_days: float, now: datetime | None = None) -> list[Path]:
    """Delete every date folder (predictions and feedback, every model) whose rows are all older than
    `retention_days`; the folders removed."""
    cutoff = _utc(now or datetime.now(UTC)) - timedelta(days=retention_days)
    removed = []
    for kind in (layout.PREDICTIONS, layout.FEEDBACK):
        for day_folder in Path(folder, kind).glob("model=*/date=*"):
            day = layout.folder_date(day_folder)
            if day is not None and datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) <= cutoff:
                shutil.rmtree(day_folder, ignore_errors=True)  # another worker may be removing it too
                removed.append(day_folder)
    return removed
