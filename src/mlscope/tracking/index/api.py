"""The fallback: the same answers through MLflow's public API (`MlflowClient.search_runs`), for
tracking servers, file stores, unverified schema revisions and filters the SQL path does not translate.
Whole result lists are cached for a few seconds, so paging through them does not search again.

MLflow's API has no OR: a boolean filter (boolean_filter.py) costs one search with its top-level
AND-ed clauses, which gives the runs and their order, plus one search per group of AND-ed clauses
under an OR or NOT, narrowed by the top-level clauses; their run ids are combined in Python."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mlscope.errors import BadInput, TrackingUnavailable
from mlscope.tracking.client import tracking_failure
from mlscope.tracking.index.boolean_filter import Expression, Leaf, matching_ids, split_conjunction
from mlscope.tracking.index.models import MAX_DEPTH, Direction, IndexedRun, Level, MetricCounts, RunMatrix, RunPage
from mlscope.tracking.index.translate import one_line

T = TypeVar("T")
Search = str | Expression  # an MLflow filter, or a boolean expression answered with several searches
_PAGE = 10_000
_CACHE_ENTRIES = 32
_VIEWS = {("active",): ViewType.ACTIVE_ONLY, ("deleted",): ViewType.DELETED_ONLY,
          ("active", "deleted"): ViewType.ALL}


def from_mlflow(run: Run) -> IndexedRun:
    """An MLflow Run as the index shows runs."""
    info = run.info
    return IndexedRun(
        run_id=info.run_id, run_name=info.run_name, experiment_id=str(info.experiment_id), status=info.status,
        start_time=info.start_time, end_time=info.end_time, lifecycle_stage=info.lifecycle_stage,
        user_id=info.user_id, artifact_uri=info.artifact_uri, metrics=dict(run.data.metrics),
        params=dict(run.data.params), tags=dict(run.data.tags),
    )


def best_of(candidates: Sequence[IndexedRun], metric: str, direction: Direction) -> tuple[IndexedRun, float] | None:
    """The run with the best non-NaN `metric`; ties: earliest start_time (missing counts as 0), then run id."""
    scored = [(run, run.metrics[metric]) for run in candidates
              if metric in run.metrics and not math.isnan(run.metrics[metric])]
    if not scored:
        return None
    sign = -1.0 if direction == "max" else 1.0
    return min(scored, key=lambda pair: (sign * pair[1], pair[0].start_time or 0, pair[0].run_id))


class ApiBackend:
    """Run queries answered by MlflowClient.search_runs (all pages)."""

    name = "api"

    def __init__(self, tracking_uri: str, cache_seconds: float) -> None:
        self.tracking_uri = tracking_uri
        self.cache_seconds = cache_seconds
        self._client: MlflowClient | None = None
        self._cache: dict[tuple[object, ...], tuple[float, list[IndexedRun]]] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def experiment_ids(self, name: str) -> list[tuple[str, str | None]]:
        experiment = _call(lambda: self.client.get_experiment_by_name(name))
        return [] if experiment is None else [(experiment.experiment_id, None)]

    def page(self, experiment_id: str, search: Search, order_by: Sequence[str], stages: list[str],
             offset: int, limit: int, level: Level = None) -> RunPage:
        found = self.matching(experiment_id, search, order_by, stages)
        if level is not None and level.parent is not None:
            found = [run for run in found if _parent_tag(run) == level.parent and run.run_id != level.parent]
        elif level is not None:
            parents = self._parents(experiment_id, stages)
            found = [run for run in found if parents.get(run.run_id) is None]
        return RunPage(runs=found[offset:offset + limit], total=len(found), offset=offset, limit=limit, backend="api")

    def best(self, experiment_id: str, search: Search, stages: list[str], metric: str,
             direction: Direction) -> tuple[IndexedRun, float] | None:
        return best_of(self.matching(experiment_id, search, (), stages), metric, direction)

    def matrix(self, experiment_id: str, search: Search, order_by: Sequence[str], stages: list[str],
               metric_keys: Sequence[str], param_keys: Sequence[str]) -> RunMatrix:
        found = self.matching(experiment_id, search, order_by, stages)
        return RunMatrix(
            run_ids=[run.run_id for run in found], run_names=[run.run_name for run in found],
            statuses=[run.status for run in found], start_times=[run.start_time for run in found],
            metrics={key: [run.metrics.get(key) for run in found] for key in metric_keys},
            params={key: [run.params.get(key) for run in found] for key in param_keys}, backend="api",
        )

    def metric_counts(self, experiment_id: str, stages: list[str]) -> MetricCounts:
        return MetricCounts.of(self.all_runs(experiment_id, "", (), stages))

    def child_counts(self, experiment_id: str, search: Search, stages: list[str],
                     run_ids: Sequence[str]) -> dict[str, int]:
        wanted = set(run_ids)
        found: dict[str, int] = {}
        for run in self.matching(experiment_id, search, (), stages):
            parent = _parent_tag(run)
            if parent in wanted and parent != run.run_id:
                found[parent] = found.get(parent, 0) + 1  # type: ignore[index]
        return found

    def ancestors(self, experiment_id: str, stages: list[str], run_id: str) -> list[str]:
        """Nearest first, as far as the parents are runs of the experiment in the view (MAX_DEPTH at most)."""
        by_id = {run.run_id: run for run in self.all_runs(experiment_id, "", (), stages)}
        start = by_id.get(run_id) or self.runs_by_id([run_id]).get(run_id)
        found: list[str] = []
        parent = _parent_tag(start) if start else None
        while parent in by_id and parent not in found and len(found) < MAX_DEPTH:
            found.append(parent)  # type: ignore[arg-type]
            parent = _parent_tag(by_id[parent])  # type: ignore[index]
        return found

    def _parents(self, experiment_id: str, stages: list[str]) -> dict[str, str | None]:
        """Each run's parent, where its parent tag names another run of the experiment in the view."""
        found = self.all_runs(experiment_id, "", (), stages)
        ids = {run.run_id for run in found}
        return {run.run_id: parent if (parent := _parent_tag(run)) in ids and parent != run.run_id else None
                for run in found}

    def runs_by_id(self, run_ids: Sequence[str]) -> dict[str, IndexedRun]:
        found: dict[str, IndexedRun] = {}
        for run_id in dict.fromkeys(run_ids):
            try:
                found[run_id] = from_mlflow(self.client.get_run(run_id))
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise TrackingUnavailable(tracking_failure(exc) or f"MLflow: {one_line(exc)}") from None
        return found

    def matching(self, experiment_id: str, search: Search, order_by: Sequence[str],
                 stages: list[str]) -> list[IndexedRun]:
        """The runs matching an MLflow filter or a boolean expression, in `order_by` order."""
        if isinstance(search, str):
            return self.all_runs(experiment_id, search, order_by, stages)
        direct, rest = split_conjunction(search.root)
        base = [leaf.text for leaf in direct]
        found = self.all_runs(experiment_id, _all_of(base), order_by, stages)
        if rest is None:
            return found

        def ids(leaves: Sequence[Leaf]) -> set[str]:
            narrowed = _all_of([*base, *(leaf.text for leaf in leaves)])
            return {run.run_id for run in self.all_runs(experiment_id, narrowed, (), stages)}

        chosen = matching_ids(rest, {run.run_id for run in found}, ids)
        return [run for run in found if run.run_id in chosen]

    def all_runs(self, experiment_id: str, filter_string: str, order_by: Sequence[str],
                 stages: list[str]) -> list[IndexedRun]:
        key = (experiment_id, filter_string, tuple(order_by), tuple(stages))
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        found = _call(lambda: self._search(experiment_id, filter_string, order_by, _VIEWS[tuple(stages)]))
        with self._lock:
            self._cache[key] = (now, found)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.pop(next(iter(self._cache)))
        return found

    def _search(self, experiment_id: str, filter_string: str, order_by: Sequence[str],
                view: int) -> list[IndexedRun]:
        found: list[IndexedRun] = []
        token = None
        while True:
            page = self.client.search_runs([experiment_id], filter_string=filter_string, run_view_type=view,
                                           max_results=_PAGE, order_by=list(order_by), page_token=token)
            found.extend(from_mlflow(run) for run in page)
            token = page.token
            if not token:
                return found


def _all_of(clauses: list[str]) -> str:
    return " AND ".join(clauses)


def _parent_tag(run: IndexedRun) -> str | None:
    return run.tags.get(MLFLOW_PARENT_RUN_ID)


def _call(action: Callable[[], T]) -> T:
    try:
        return action()
    except MlflowException as exc:
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            raise BadInput(f"bad filter: {one_line(exc)}", field="filter") from None
        raise TrackingUnavailable(tracking_failure(exc) or f"MLflow: {one_line(exc)}") from None
