"""What the run index answers with: plain typed dataclasses, no DataFrames."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

Direction = Literal["max", "min"]
Backend = Literal["sql", "api"]
MAX_DEPTH = 100  # parent links followed up from a run at most


@dataclass(frozen=True, slots=True)
class TreeLevel:
    """One level of the tree of nested runs (MLflow's `mlflow.parentRunId` tag): the top level when `parent` is
    None — runs whose parent tag names no other run of the experiment in the view (none, deleted, another
    experiment's, unknown) — else the children of run `parent`."""

    parent: str | None = None


TOP_LEVEL = TreeLevel()
Level = TreeLevel | None  # None: every run, flat


@dataclass(frozen=True, slots=True)
class IndexedRun:
    """One run as MLflow's search_runs shows it: info, latest metrics (NaN as float('nan'); infinities
    as MLflow stores them, ±1.7976931348623157e308), params and tags."""

    run_id: str
    run_name: str | None
    experiment_id: str
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    user_id: str | None
    artifact_uri: str | None
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class RunPage:
    """`limit` runs from `offset` of the runs matching a filter, in order; `total` counts them all."""

    runs: list[IndexedRun]
    total: int
    offset: int
    limit: int
    backend: Backend

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.runs)
        return end if end < self.total else None


@dataclass(frozen=True, slots=True)
class BestRun:
    """The best run by one metric (see `RunIndex.best` for the tie rule)."""

    run: IndexedRun
    metric: str
    direction: Direction
    value: float


class _Scored(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...


@dataclass(frozen=True, slots=True)
class MetricCounts:
    """How many runs have each metric (a latest value that is not NaN): among all runs (`runs`, `present`)
    and among the FINISHED ones (`finished`, `present_finished`)."""

    runs: int
    finished: int
    present: dict[str, int]
    present_finished: dict[str, int]

    @classmethod
    def of(cls, found: Iterable[_Scored]) -> MetricCounts:
        """Counted from runs already read (the API path, `mlscope runs`)."""
        runs = finished = 0
        present: dict[str, int] = {}
        present_finished: dict[str, int] = {}
        for run in found:
            done = run.status == "FINISHED"
            runs += 1
            finished += done
            for key, value in run.metrics.items():
                if not math.isnan(value):
                    present[key] = present.get(key, 0) + 1
                    present_finished[key] = present_finished.get(key, 0) + done
        return cls(runs=runs, finished=finished, present=present,
                   present_finished={key: n for key, n in present_finished.items() if n})


@dataclass(frozen=True, slots=True)
class RunMatrix:
    """Chosen metrics and params of every matching run, column-wise: `metrics[key][i]` belongs to
    `run_ids[i]`; None where the run has no such metric/param, float('nan') for NaN metrics."""

    run_ids: list[str]
    run_names: list[str | None]
    statuses: list[str]
    start_times: list[int | None]
    metrics: dict[str, list[float | None]]
    params: dict[str, list[str | None]]
    backend: Backend

    def __len__(self) -> int:
        return len(self.run_ids)


@dataclass(frozen=True, slots=True)
class RunComparison:
    """Selected runs side by side, in the order asked for, with the union of their keys (sorted) and
    the param keys whose values differ between them (a missing param counts as a value)."""

    runs: list[IndexedRun]
    metric_keys: list[str]
    param_keys: list[str]
    tag_keys: list[str]
    differing_params: list[str]
