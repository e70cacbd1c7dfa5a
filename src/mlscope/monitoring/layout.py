"""Where the prediction log and the feedback live, and what their rows are called.

    {monitor_dir}/predictions/model={name}/date={YYYY-MM-DD}/part-{first_ts_ms}-{pid}-{seq}.parquet
    {monitor_dir}/feedback/model={name}/date={YYYY-MM-DD}/part-{first_ts_ms}-{pid}-{seq}.parquet

Append-only part files, one writer per process: any number of API workers and replicas write at once
without locks. A part is written under a hidden temporary name in its folder and renamed, so a reader
never sees half a file. Request ids start with their time in milliseconds (hex), so they sort by time
and tell which date folders can hold them."""

from __future__ import annotations

import itertools
import os
import random
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pyarrow as pa

PREDICTIONS = "predictions"
FEEDBACK = "feedback"

REQUEST_ID = "request_id"
TS = "ts"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
ALIAS = "alias"
LATENCY_MS = "latency_ms"
OUTPUT = "output"
LABEL = "label"
ACTUAL = "actual"
CLASS_PREFIX = "p."
INPUT_PREFIX = "in."

TIMESTAMP = pa.timestamp("ms", tz="UTC")
FEEDBACK_SCHEMA = pa.schema([(REQUEST_ID, pa.string()), (ACTUAL, pa.string()), (TS, TIMESTAMP)])
# One request id: 12 hex digits of Unix time in ms, 6 random hex digits; a batch's row adds "-{index}".
REQUEST_ID_PATTERN = r"^[0-9a-f]{18}(-[0-9]{1,9})?$"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)

_LAST_MS = int(datetime(9998, 12, 31, tzinfo=UTC).timestamp() * 1000)  # a well-formed id reads as at most this
_sequence = itertools.count()  # part numbers of this process (every log in it draws from one sequence)


def new_request_id(now_ms: int | None = None) -> str:
    """A time-ordered id: f"{time_ms:012x}{random 6 hex}" (not a secret: it only needs to be unique)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{ms:012x}{random.getrandbits(24):06x}"


def row_request_id(batch_id: str, index: int) -> str:
    return f"{batch_id}-{index}"


def is_request_id(text: str) -> bool:
    return _REQUEST_ID.match(text) is not None


def request_time(request_id: str) -> datetime:
    """When the request with this id arrived (from its first 12 hex digits)."""
    return datetime.fromtimestamp(min(int(request_id[:12], 16), _LAST_MS) / 1000, UTC)


def model_folder(root: Path, kind: str, model: str) -> Path:
    """The folder of one model's predictions or feedback (`kind`: PREDICTIONS or FEEDBACK)."""
    return Path(root) / kind / f"model={quote(model, safe='')}"


def date_folder(root: Path, kind: str, model: str, day: date) -> Path:
    return model_folder(root, kind, model) / f"date={day.isoformat()}"


def folder_date(folder: Path) -> date | None:
    """The date of a `date=YYYY-MM-DD` folder; None for anything else."""
    name = folder.name
    if not name.startswith("date="):
        return None
    try:
        return date.fromisoformat(name.removeprefix("date="))
    except ValueError:
        return None


def part_files(root: Path, kind: str, model: str, first: date | None = None, last: date | None = None) -> list[Path]:
    """The finished part files of one model whose date folder lies in [first, last] (either end open)."""
    folder = model_folder(root, kind, model)
    if not folder.is_dir():
        return []
    found = []
    for day_folder in folder.iterdir():
        day = folder_date(day_folder)
        if day is None or (first is not None and day < first) or (last is not None and day > last):
            continue
        found.extend(day_folder.glob("part-*.parquet"))
    return sorted(found)


def write_part(root: Path, kind: str, model: str, day: date, table: pa.Table) -> Path:
    """Write `table` as a new part file of `model` on `day`: to a hidden name first, then renamed."""
    import pyarrow.parquet as pq

    folder = date_folder(root, kind, model, day)
    folder.mkdir(parents=True, exist_ok=True)
    first_ms = int(pa.compute.min(table.column(TS)).cast(pa.int64()).as_py())
    name = f"part-{first_ms}-{os.getpid()}-{next(_sequence)}.parquet"
    temporary = folder / f".{name}.tmp"
    pq.write_table(table, temporary, compression="zstd")
    temporary.rename(folder / name)
    return folder / name


def utc_day(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).date()


def day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# ---------------------------------------------------------------- the output columns, per task
# A model's outputs (Predictor.outputs) as the log's `output` and `label` columns (and `p.<class>`,
# multiclass): binary P(class 1) and "0"/"1"; multiclass the probability of the predicted label, that
# label, and every class's probability; regression the prediction and no label.

OutputColumns = Callable[[np.ndarray, tuple[str, ...]], dict[str, pa.Array]]


def _binary(outputs: np.ndarray, _: tuple[str, ...]) -> dict[str, pa.Array]:
    labels = np.where(outputs > 0.5, "1", "0")  # the answer's rule: 1 when P(class 1) is above 0.5
    return {OUTPUT: pa.array(outputs, pa.float64()), LABEL: pa.array(labels, pa.string())}


def _multiclass(outputs: np.ndarray, classes: tuple[str, ...]) -> dict[str, pa.Array]:
    best = np.argmax(outputs, axis=1)  # the first of equals, as the answer's label
    columns = {OUTPUT: pa.array(outputs[np.arange(len(outputs)), best], pa.float64()),
               LABEL: pa.array(np.asarray(classes, dtype=object)[best], pa.string())}
    for index, label in enumerate(classes):
        columns[f"{CLASS_PREFIX}{label}"] = pa.array(outputs[:, index], pa.float64())
    return columns


def _regression(outputs: np.ndarray, _: tuple[str, ...]) -> dict[str, pa.Array]:
    return {OUTPUT: pa.array(outputs, pa.float64()), LABEL: pa.nulls(len(outputs), pa.string())}


OUTPUT_COLUMNS: dict[str, OutputColumns] = {"binary": _binary, "multiclass": _multiclass, "regression": _regression}


def input_column(values: np.ndarray, numeric: bool) -> pa.Array:
    """One model input as its log column: float64 for numbers, text for anything else (nulls kept)."""
    if numeric:
        return pa.array(np.asarray(values, dtype=np.float64), pa.float64(), from_pandas=True)
    return pa.array([None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values], pa.string())
