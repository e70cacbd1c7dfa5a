"""The run index: one experiment's runs ranked, filtered, paged and compared, fast.

SQLite and PostgreSQL stores whose schema revision is in VERIFIED_REVISIONS are read with SQL, read-only;
anything else (http(s) tracking servers, file stores, other revisions, dataset filters) goes through
MLflow's public API. Both give the answers of `MlflowClient.search_runs` for the same filter and order;
a filter with OR, NOT, parentheses, BETWEEN or IN on any key (boolean_filter.py) gets the answers of
its clauses' searches combined by its boolean structure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Self, TypeVar

from mlflow.entities import LifecycleStage, ViewType
from sqlalchemy.exc import SQLAlchemyError

from mlscope.config import Settings
from mlscope.errors import BadInput, NotFound, TrackingUnavailable
from mlscope.tracking.index import boolean_filter, schema, translate
from mlscope.tracking.index.api import ApiBackend, Search
from mlscope.tracking.index.models import (Backend, BestRun, Direction, Level, MetricCounts, RunComparison,
                                          RunMatrix, RunPage)
from mlscope.tracking.index.sql import SqlBackend

T = TypeVar("T")
MAX_PAGE = 50_000  # MLflow's own search_runs limit
REVISION_RECHECK_SECONDS = 30.0


class RunIndex:
    """Read path over one tracking store. Thread-safe; open once and share it."""

    def __init__(self, tracking_uri: str, *, cache_seconds: float = 5.0,
                 accepted_revisions: frozenset[str] = schema.VERIFIED_REVISIONS) -> None:
        self.tracking_uri = tracking_uri
        self._accepted = accepted_revisions
        self._api = ApiBackend(tracking_uri, cache_seconds)
        self._sql: SqlBackend | None = None
        self._reason = ""
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    @property
    def backend(self) -> Backend:
        """'sql' when the store is read directly, else 'api'."""
        return "sql" if self._sql_backend() is not None else "api"

    @property
    def fallback_reason(self) -> str:
        """Why the API is used ('' when SQL is)."""
        self._sql_backend()
        return self._reason

    def experiment_id(self, name: str) -> str:
        """The id of the experiment called `name` (deleted ones included, as MLflow's lookup does)."""
        backend = self._sql_backend() or self._api
        found = _sql_call(lambda: backend.experiment_ids(name))
        if len(found) > 1:
            found = [row for row in found if row[1] in (None, "default")]
        if len(found) != 1:
            raise NotFound(f"experiment '{name}' not found", field="experiment")
        return found[0][0]

    def page(self, experiment_id: str, *, filter_string: str = "", order_by: Sequence[str] = (), offset: int = 0,
             limit: int = 100, view: int = ViewType.ACTIVE_ONLY, level: Level = None) -> RunPage:
        """Runs `offset`..`offset+limit` of those matching `filter_string` (MLflow search syntax, or a
        boolean expression of it: see boolean_filter.py) in the order of `order_by` (MLflow syntax, e.g.
        ["metrics.accuracy DESC", "params.lr"]), and their total. With a `level` (TOP_LEVEL or
        TreeLevel(parent=run_id)) only the runs of that level of the tree of nested runs; the filter and the
        order then apply within it."""
        _check_window(offset, limit)
        parsed, stages = self._prepare(filter_string, order_by, view)
        sql = self._sql_for(parsed)
        if sql is None:
            return self._api.page(experiment_id, _search(filter_string, parsed), order_by, stages, offset, limit,
                                  level)
        return _sql_call(lambda: sql.page(experiment_id, parsed, order_by, stages, offset, limit, level))

    def child_counts(self, experiment_id: str, run_ids: Sequence[str], *, filter_string: str = "",
                     view: int = ViewType.ACTIVE_ONLY) -> dict[str, int]:
        """How many runs of the experiment matching the filter name each of `run_ids` as their parent (runs
        without children are left out). One query per 500 run ids on SQL stores."""
        parsed, stages = self._prepare(filter_string, (), view)
        if not run_ids:
            return {}
        sql = self._sql_for(parsed)
        if sql is None:
            return self._api.child_counts(experiment_id, _search(filter_string, parsed), stages, run_ids)
        return _sql_call(lambda: sql.child_counts(experiment_id, parsed, stages, run_ids))

    def ancestors(self, experiment_id: str, run_id: str, *, view: int = ViewType.ACTIVE_ONLY) -> list[str]:
        """The parent, grandparent, ... of a run among the experiment's runs in the view, outermost first: the
        rows that hold it when the tree is collapsed. A chain that loops back ends before the repeat."""
        _, stages = self._prepare("", (), view)
        sql = self._sql_backend()
        found = (self._api.ancestors(experiment_id, stages, run_id) if sql is None
                 else _sql_call(lambda: sql.ancestors(experiment_id, stages, run_id)))
        path: list[str] = []
        for ancestor in found:
            if ancestor == run_id or ancestor in path:
                break
            path.append(ancestor)
        return path[::-1]

    def best(self, experiment_id: str, metric: str, direction: Direction = "max", *, filter_string: str = "",
             view: int = ViewType.ACTIVE_ONLY) -> BestRun | None:
        """The matching run with the highest ('max') or lowest ('min') value of `metric`; runs without it
        or with NaN never win. Ties go to the earliest start_time (a missing one counts as 0), then to the
        smallest run id. None when no run has a value."""
        if direction not in ("max", "min"):
            raise BadInput(f"direction must be 'max' or 'min', got {direction!r}", field="direction")
        parsed, stages = self._prepare(filter_string, (), view)
        sql = self._sql_for(parsed)
        if sql is None:
            found = self._api.best(experiment_id, _search(filter_string, parsed), stages, metric, direction)
        else:
            found = _sql_call(lambda: sql.best(experiment_id, parsed, stages, metric, direction))
        return None if found is None else BestRun(run=found[0], metric=metric, direction=direction, value=found[1])

    def matrix(self, experiment_id: str, metrics: Sequence[str], params: Sequence[str] = (), *,
               filter_string: str = "", order_by: Sequence[str] = (), view: int = ViewType.ACTIVE_ONLY) -> RunMatrix:
        """The chosen metrics and params of every matching run, in `order_by` order (MLflow's default:
        newest first), column-wise."""
        parsed, stages = self._prepare(filter_string, order_by, view)
        sql = self._sql_for(parsed)
        if sql is None:
            return self._api.matrix(experiment_id, _search(filter_string, parsed), order_by, stages, metrics,
                                    params)
        return _sql_call(lambda: sql.matrix(experiment_id, parsed, order_by, stages, metrics, params))

    def keys(self, experiment_id: str, *, view: int = ViewType.ACTIVE_ONLY) -> tuple[list[str], list[str]]:
        """The metric keys and param keys any run of the experiment has, sorted (for column choosers)."""
        _, stages = self._prepare("", (), view)
        sql = self._sql_backend()
        if sql is None:
            found = self._api.all_runs(experiment_id, "", (), stages)
            return (sorted({key for run in found for key in run.metrics}),
                    sorted({key for run in found for key in run.params}))
        return _sql_call(lambda: sql.keys(experiment_id, stages))

    def metric_counts(self, experiment_id: str, *, view: int = ViewType.ACTIVE_ONLY) -> MetricCounts:
        """How many runs have each metric (non-NaN), all and FINISHED: what the default "best by" metric
        is chosen from (`mlscope.tracking.best_by`). One query on SQL stores."""
        _, stages = self._prepare("", (), view)
        sql = self._sql_backend()
        if sql is None:
            return self._api.metric_counts(experiment_id, stages)
        return _sql_call(lambda: sql.metric_counts(experiment_id, stages))

    def compare(self, run_ids: Sequence[str]) -> RunComparison:
        """Params, metrics and tags of the given runs (any experiment or lifecycle stage), in that order."""
        if not run_ids:
            raise BadInput("choose at least one run to compare", field="run_ids")
        sql = self._sql_backend()
        found = _sql_call(lambda: sql.runs_by_id(run_ids)) if sql else self._api.runs_by_id(run_ids)
        missing = [run_id for run_id in run_ids if run_id not in found]
        if missing:
            raise NotFound(f"run(s) not found: {', '.join(missing)}", field="run_ids")
        chosen = [found[run_id] for run_id in run_ids]
        param_keys = sorted({key for run in chosen for key in run.params})
        return RunComparison(
            runs=chosen, metric_keys=sorted({key for run in chosen for key in run.metrics}), param_keys=param_keys,
            tag_keys=sorted({key for run in chosen for key in run.tags}),
            differing_params=[key for key in param_keys if len({run.params.get(key) for run in chosen}) > 1],
        )

    def close(self) -> None:
        if self._sql is not None:
            self._sql.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _prepare(self, filter_string: str, order_by: Sequence[str],
                 view: int) -> tuple[translate.Filter, list[str]]:
        if isinstance(order_by, str):
            raise BadInput("order_by must be a list of clauses", field="order_by")
        expression = boolean_filter.parse(filter_string or "")
        parsed = translate.parse_filter(filter_string or "") if expression is None else expression
        translate.parse_order_by(order_by)
        if view not in (ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL):
            raise BadInput(f"unknown view type {view!r}", field="view")
        return parsed, sorted(LifecycleStage.view_type_to_stages(view))

    def _sql_for(self, parsed: translate.Filter) -> SqlBackend | None:
        return None if translate.has_dataset_clause(parsed) else self._sql_backend()

    def _sql_backend(self) -> SqlBackend | None:
        """The SQL backend while the store's revision is accepted; the revision is read again every
        REVISION_RECHECK_SECONDS, so an `mlflow db upgrade` under a running server switches to the API."""
        with self._lock:
            now = time.monotonic()
            if self._checked_at is None or now - self._checked_at >= REVISION_RECHECK_SECONDS:
                self._refresh()
                self._checked_at = now
            return self._sql

    def _refresh(self) -> None:
        if self._sql is None:
            self._sql, self._reason = self._choose()
            return
        problem = schema.revision_problem(self._sql.engine, self._accepted)
        if problem:
            self._sql.engine.dispose()
            self._sql, self._reason = None, problem

    def _choose(self) -> tuple[SqlBackend | None, str]:
        dialect = schema.sql_dialect(self.tracking_uri)
        if dialect is None:
            return None, "not a SQLite or PostgreSQL store"
        try:
            engine = schema.read_only_engine(self.tracking_uri)
        except (schema.NotSqlStore, SQLAlchemyError, ImportError) as exc:
            return None, translate.one_line(exc)
        problem = schema.revision_problem(engine, self._accepted)
        if problem:
            engine.dispose()
            return None, problem
        return SqlBackend(engine, dialect), ""


def open_run_index(settings: Settings, *, cache_seconds: float = 5.0) -> RunIndex:
    """The run index of the settings' tracking store."""
    return RunIndex(settings.tracking_uri, cache_seconds=cache_seconds)


def _search(filter_string: str, parsed: translate.Filter) -> Search:
    """What the API backend is asked: MLflow's filter text as given, or the boolean expression."""
    return filter_string if isinstance(parsed, list) else parsed


def _check_window(offset: int, limit: int) -> None:
    if offset < 0:
        raise BadInput(f"offset must be >= 0, got {offset}", field="offset")
    if not 1 <= limit <= MAX_PAGE:
        raise BadInput(f"limit must be between 1 and {MAX_PAGE}, got {limit}", field="limit")


def _sql_call(action: Callable[[], T]) -> T:
    try:
        return action()
    except SQLAlchemyError as exc:
        raise TrackingUnavailable(f"tracking database: {translate.one_line(exc)}") from None
