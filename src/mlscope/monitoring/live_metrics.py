"""Live metrics of a served version: its logged outputs scored against the feedback that arrived
(`task.score`, the same function that scored the test split), with percentile-bootstrap intervals."""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from mlscope import task as tasks
from mlscope.task import Task

PROBABILITY_PREFIX = "p."
RESAMPLES = 100  # task.score per resample costs ~10-20 ms (scikit-learn metrics): ~1-2 s per version
CACHED = 32  # recent results kept: the Production view and `monitor` ask again while no new feedback arrives
_computed: dict[str, list[LiveMetric]] = {}
_cache_lock = threading.Lock()
MAX_BOOTSTRAP_ROWS = 5_000  # rows per resample; more labelled rows: m-out-of-n, see live_metrics


class LiveMetric(BaseModel):
    """One metric on the labelled live rows, its interval, and the run's value on its test split."""

    name: str
    value: float | None = Field(description="On the labelled live rows; null when undefined (e.g. one class only).")
    low: float | None = Field(description="Lower end of the bootstrap interval; null with fewer than 2 rows.")
    high: float | None = Field(description="Upper end of the bootstrap interval.")
    test_value: float | None = Field(description="The run's metric on its test split, when it logged one.")
    higher_is_better: bool


BINARY_LABELS = ("0", "1")  # the log's labels of a binary model: class 1 is the positive class


def classes_of(task: Task, frame: pd.DataFrame, known: Sequence[Any] = ()) -> tuple[str, ...]:
    """The class labels (text, in the model's order) the logged outputs refer to: binary "0"/"1" (the
    log's convention); multiclass `known` (the model's classes) when given, else its `p.<class>`
    columns; () for a regressor."""
    if not task.classification:
        return ()
    if task is tasks.BINARY:
        return BINARY_LABELS
    if known:
        return tuple(str(label) for label in known)
    return tuple(c.removeprefix(PROBABILITY_PREFIX) for c in frame.columns if c.startswith(PROBABILITY_PREFIX))


def truth_and_outputs(task: Task, frame: pd.DataFrame, classes: Sequence[str],
                      model_classes: Sequence[Any] = ()) -> tuple[np.ndarray, np.ndarray]:
    """`actual` (text in the feedback files) as the task's truth, and the logged outputs as `task.score`
    takes them. A binary truth may name the model's own classes (`model_classes`, e.g. "no"/"yes"): it
    is read as "0"/"1". Regression rows whose actual value is not a number are left out."""
    if not task.classification:
        truth = pd.to_numeric(frame["actual"], errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(truth)
        return truth[keep], frame["output"].to_numpy(dtype=float)[keep]
    truth = frame["actual"].astype(str)
    if task is tasks.BINARY:
        if len(model_classes) == 2:
            truth = truth.replace({str(model_classes[0]): "0", str(model_classes[1]): "1"})
        positive = frame["output"].to_numpy(dtype=float)
        return truth.to_numpy(dtype=object), np.column_stack([1.0 - positive, positive])
    outputs = frame[[f"{PROBABILITY_PREFIX}{label}" for label in classes]].to_numpy(dtype=float)
    return truth.to_numpy(dtype=object), outputs


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def live_metrics(task: Task, labelled: pd.DataFrame, classes: Sequence[str], test_metrics: Mapping[str, float], *,
                 model_classes: Sequence[Any] = (), resamples: int = RESAMPLES, max_rows: int = MAX_BOOTSTRAP_ROWS,
                 seed: int = 0, confidence: float = 0.95) -> list[LiveMetric]:
    """The task's metrics on the labelled rows (predictions joined with their feedback: `actual` plus the
    logged outputs), each with a bootstrap interval over `resamples` resamples of the rows.

    Up to `max_rows` rows the interval is the percentile bootstrap's. Beyond, each resample draws
    `max_rows` rows (an m-out-of-n bootstrap) and the spread of the resampled values around the full
    value is scaled by sqrt(m / n): the same interval for the metrics that average over rows, at a cost
    that does not grow with the log."""
    truth, outputs = truth_and_outputs(task, labelled, classes, model_classes)
    n = len(truth)
    if n == 0:
        return []
    key = _digest(task, truth, outputs, classes, test_metrics, resamples, max_rows, seed, confidence)
    with _cache_lock:
        found = _computed.get(key)
    if found is None:
        found = _live_metrics(task, truth, outputs, classes, test_metrics, resamples, max_rows, seed, confidence)
        with _cache_lock:
            while len(_computed) >= CACHED:
                _computed.pop(next(iter(_computed)))
            _computed[key] = found
    return [metric.model_copy() for metric in found]


def _digest(task: Task, truth: np.ndarray, outputs: np.ndarray, *parameters: Any) -> str:
    """What identifies a computation: the rows (truth and outputs) and every parameter."""
    digest = hashlib.sha256(task.name.encode())
    digest.update("\x1f".join(map(str, truth.tolist())).encode())
    digest.update(np.ascontiguousarray(outputs, dtype=float).tobytes())
    digest.update(repr([list(p.items()) if isinstance(p, Mapping) else p for p in parameters]).encode())
    return digest.hexdigest()


def _live_metrics(task: Task, truth: np.ndarray, outputs: np.ndarray, classes: Sequence[str],
                  test_metrics: Mapping[str, float], resamples: int, max_rows: int, seed: int,
                  confidence: float) -> list[LiveMetric]:
    n = len(truth)
    values = task.score(truth, outputs, classes)
    names = [*(name for name in task.metric_names if name in values), *(name for name in values
                                                                       if name not in task.metric_names)]
    draws: dict[str, list[float]] = {name: [] for name in names}
    size = min(n, max_rows)
    if n >= 2:
        rng = np.random.default_rng(seed)
        for _ in range(resamples):
            rows = rng.integers(0, n, size=size)
            scores = task.score(truth[rows], outputs[rows], classes)
            for name in names:
                draws[name].append(scores.get(name, float("nan")))
    tail, scale = (1.0 - confidence) / 2.0, math.sqrt(size / n)
    metrics = []
    for name in names:
        value = values[name]
        deviations = np.asarray(draws[name], dtype=float) - value
        deviations = deviations[np.isfinite(deviations)]
        low, high = (value + scale * np.quantile(deviations, [tail, 1.0 - tail]) if deviations.size
                     else (math.nan, math.nan))
        test = test_metrics.get(name)
        metrics.append(LiveMetric(name=name, value=_finite(value), low=_finite(float(low)), high=_finite(float(high)),
                                  higher_is_better=tasks.higher_is_better(name),
                                  test_value=None if test is None else _finite(float(test))))
    return metrics
