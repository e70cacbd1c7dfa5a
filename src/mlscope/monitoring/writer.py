"""The prediction log and the feedback log of one API process: rows are appended to an in-memory buffer
on the request path (no conversion, no I/O) and written as Parquet part files by a background thread
every `log_flush_seconds`, and on close (the app's shutdown: SIGTERM, Ctrl-C). Memory is bounded: a
request whose rows do not fit in `log_buffer_rows` is not logged, and its rows are counted as dropped.
A process killed with SIGKILL loses what it buffered since its last write: at most
`log_flush_seconds` of rows."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mlscope.monitoring import layout

if TYPE_CHECKING:
    from pydantic import BaseModel

    from mlscope.serving.loading import LoadedModel

log = logging.getLogger(__name__)

RETENTION_EVERY_SECONDS = 3600.0
Count = Callable[[int], None]


def _ignore(_: int) -> None:
    return None


class BackgroundWriter:
    """A bounded buffer of entries written as part files by one background thread (started on first use
    or by `start`, ended by `close`, which writes what is left). Subclasses turn entries into tables."""

    kind = ""

    def __init__(self, root: Path, flush_seconds: float, max_rows: int, *, on_written: Count = _ignore,
                 on_dropped: Count = _ignore, every_hour: Callable[[], object] | None = None) -> None:
        self.root, self.flush_seconds, self.max_rows = Path(root), flush_seconds, max_rows
        self.on_written, self.on_dropped, self.every_hour = on_written, on_dropped, every_hour
        self.written = self.dropped = 0
        self._entries: list[Any] = []
        self._rows = 0
        self._lock = threading.Lock()  # the buffer
        self._writing = threading.Lock()  # one write at a time (the thread, `flush`, `close`)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def buffered(self) -> int:
        return self._rows

    def _add(self, entry: Any, rows: int) -> bool:
        """Buffer `entry` (`rows` rows); False (and the rows counted as dropped) when they do not fit."""
        if self._thread is None:
            self.start()
        with self._lock:
            if self._rows + rows > self.max_rows or self._closed:
                self.dropped += rows
                fits = False
            else:
                self._entries.append(entry)
                self._rows += rows
                self._buffered(entry)
                fits = True
        if not fits:
            self.on_dropped(rows)
        return fits

    def start(self) -> None:
        """Start the background writer (once; idempotent). Called after any fork: threads do not survive one."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name=f"mlscope-{self.kind}-log", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and write everything buffered; later rows are dropped and counted."""
        self._stop.set()
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.flush()

    def flush(self) -> int:
        """Write the buffered rows now (the caller waits); how many were written."""
        with self._writing:
            with self._lock:
                entries, self._entries, rows = self._entries, [], self._rows
                self._rows = 0
            if not entries:
                return 0
            written = 0
            try:
                for model, day, table in self._tables(entries):
                    layout.write_part(self.root, self.kind, model, day, table)
                    written += table.num_rows
            except Exception as exc:  # noqa: BLE001 - a full disk must not stop the API: the rows are counted
                log.warning("could not write the %s log under %s: %s", self.kind, self.root, exc)
            finally:
                self._written(entries)
            self.written += written
            if written:
                self.on_written(written)
            if rows - written:
                self.dropped += rows - written
                self.on_dropped(rows - written)
            return written

    def _run(self) -> None:
        housekeeping = 0.0
        while not self._stop.wait(self.flush_seconds):
            self.flush()
            if self.every_hour is not None and time.monotonic() >= housekeeping:
                housekeeping = time.monotonic() + RETENTION_EVERY_SECONDS
                try:
                    self.every_hour()
                except OSError as exc:
                    log.warning("%s log housekeeping under %s failed: %s", self.kind, self.root, exc)

    def _tables(self, entries: list[Any]) -> Iterator[tuple[str, date, pa.Table]]:
        raise NotImplementedError

    def _buffered(self, entry: Any) -> None:
        """Called (holding the buffer's lock) when `entry` is buffered."""

    def _written(self, entries: list[Any]) -> None:
        """Called once the entries' write has ended (written or not)."""


@dataclass(slots=True)
class _Rows:
    """One request's answered rows: `single` holds one validated request (a /predict row) whose output
    is one row's; otherwise `columns` and `outputs` hold a batch's."""

    model: LoadedModel
    request_id: str
    ts_ms: int
    latency_ms: float
    single: BaseModel | None = None
    output: Any = None
    columns: dict[str, np.ndarray] | None = None
    outputs: np.ndarray | None = None


class PredictionLog(BackgroundWriter):
    """The predictions of one API process. `add_one` / `add_batch` are all the request path pays: the
    rows are turned into Arrow columns in the background thread."""

    kind = layout.PREDICTIONS

    def __init__(self, root: Path, flush_seconds: float, max_rows: int, sample_rate: float = 1.0,
                 **counters: Any) -> None:
        super().__init__(root, flush_seconds, max_rows, **counters)
        self.sample_rate = sample_rate

    def sampled(self) -> bool:
        """Whether this request's predictions are logged (`log_sample_rate` of the requests)."""
        return self.sample_rate >= 1.0 or random.random() < self.sample_rate

    def add_one(self, model: LoadedModel, item: BaseModel, output: Any, request_id: str, latency_ms: float) -> bool:
        """Log one /predict answer (`output`: the row's output as the batcher returned it)."""
        return self._add(_Rows(model, request_id, int(time.time() * 1000), latency_ms, single=item, output=output), 1)

    def add_batch(self, model: LoadedModel, columns: dict[str, np.ndarray], outputs: np.ndarray, batch_id: str,
                  latency_ms: float) -> bool:
        """Log a batch's answers: row i gets the request id f"{batch_id}-{i}"."""
        return self._add(_Rows(model, batch_id, int(time.time() * 1000), latency_ms, columns=columns,
                               outputs=outputs), len(outputs))

    def _tables(self, entries: list[_Rows]) -> Iterator[tuple[str, date, pa.Table]]:
        groups: dict[tuple[int, date], list[_Rows]] = {}
        for entry in entries:
            groups.setdefault((id(entry.model), layout.utc_day(entry.ts_ms)), []).append(entry)
        for (_, day), group in groups.items():
            yield group[0].model.name, day, prediction_table(group)


def prediction_table(entries: Sequence[_Rows]) -> pa.Table:
    """The log rows of entries answered by one model."""
    model = entries[0].model
    contract = model.contract
    ids: list[str] = []
    ts: list[np.ndarray] = []
    latency: list[np.ndarray] = []
    parts: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
    singles = [entry for entry in entries if entry.single is not None]
    if singles:
        parts.append((contract.columns([entry.single for entry in singles]),  # type: ignore[misc]
                      np.asarray([entry.output for entry in singles], dtype=np.float64)))
        ids.extend(entry.request_id for entry in singles)
        ts.append(np.array([entry.ts_ms for entry in singles], dtype=np.int64))
        latency.append(np.array([entry.latency_ms for entry in singles], dtype=np.float64))
    for entry in entries:
        if entry.single is None:
            assert entry.columns is not None and entry.outputs is not None
            rows = len(entry.outputs)
            parts.append((entry.columns, np.asarray(entry.outputs, dtype=np.float64)))
            ids.extend(layout.row_request_id(entry.request_id, i) for i in range(rows))
            ts.append(np.full(rows, entry.ts_ms, dtype=np.int64))
            latency.append(np.full(rows, entry.latency_ms, dtype=np.float64))
    rows = len(ids)
    outputs = np.concatenate([output for _, output in parts])
    columns: dict[str, pa.Array] = {
        layout.REQUEST_ID: pa.array(ids, pa.string()),
        layout.TS: pa.array(np.concatenate(ts), pa.int64()).cast(layout.TIMESTAMP),
        layout.MODEL_NAME: pa.array(np.full(rows, model.name, dtype=object), pa.string()),
        layout.MODEL_VERSION: pa.array(np.full(rows, model.version, dtype=object), pa.string()),
        layout.ALIAS: pa.array(np.full(rows, model.alias, dtype=object), pa.string()),
        layout.LATENCY_MS: pa.array(np.concatenate(latency), pa.float64()),
        **layout.OUTPUT_COLUMNS[model.task.name](outputs, contract.classes),
    }
    numeric = set(contract.numeric)
    for feature in contract.features:
        values = np.concatenate([part[feature] for part, _ in parts])
        columns[f"{layout.INPUT_PREFIX}{feature}"] = layout.input_column(values, feature in numeric)
    return pa.table(columns)


@dataclass(slots=True)
class _Feedback:
    model: str
    pairs: list[tuple[str, str]]  # (request_id, actual as text)
    ts_ms: int


class FeedbackLog(BackgroundWriter):
    """The feedback of one API process (the truth per request id), written like the predictions.
    `pending` are the request ids received and not yet written (a second feedback for one is refused)."""

    kind = layout.FEEDBACK

    def __init__(self, root: Path, flush_seconds: float, max_rows: int, **counters: Any) -> None:
        super().__init__(root, flush_seconds, max_rows, **counters)
        self._pending: set[str] = set()

    def pending(self, request_ids: Iterable[str]) -> set[str]:
        with self._lock:
            return self._pending.intersection(request_ids)

    def add(self, model: str, pairs: list[tuple[str, str]]) -> bool:
        """Buffer feedback of `model`'s predictions: (request id, actual as text) pairs."""
        return self._add(_Feedback(model, pairs, int(time.time() * 1000)), len(pairs))

    def _buffered(self, entry: _Feedback) -> None:
        self._pending.update(request_id for request_id, _ in entry.pairs)

    def _tables(self, entries: list[_Feedback]) -> Iterator[tuple[str, date, pa.Table]]:
        groups: dict[tuple[str, date], list[_Feedback]] = {}
        for entry in entries:
            groups.setdefault((entry.model, layout.utc_day(entry.ts_ms)), []).append(entry)
        for (model, day), group in groups.items():
            ids = [request_id for entry in group for request_id, _ in entry.pairs]
            actual = [value for entry in group for _, value in entry.pairs]
            ts = [entry.ts_ms for entry in group for _ in entry.pairs]
            yield model, day, pa.table([pa.array(ids, pa.string()), pa.array(actual, pa.string()),
                                        pa.array(ts, pa.int64()).cast(layout.TIMESTAMP)],
                                       schema=layout.FEEDBACK_SCHEMA)

    def _written(self, entries: list[_Feedback]) -> None:
        with self._lock:
            self._pending.difference_update(request_id for entry in entries for request_id, _ in entry.pairs)
