"""A small process pool for the k+1 fits of each experiment.

Fitting is GIL-bound for these small data sets (threads gave no speed-up), so fits run in loky
worker processes. `mlscope train` starts them first thing, so they import scikit-learn while the
main process imports MLflow, and every experiment's fits are submitted before the tracking store is
opened."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

WORKERS = max(1, min(2, os.cpu_count() or 1))


def pool() -> Executor | None:
    """The shared worker pool, or None on a one-core machine (fits then run in-process)."""
    if WORKERS < 2:
        return None
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=WORKERS, timeout=120)


def _ready() -> int:
    import sklearn.base  # noqa: F401  - the import is the work: it is what makes a cold worker slow

    return os.getpid()


def warm_up() -> None:
    """Start the workers now (they import scikit-learn while the caller imports MLflow)."""
    executor = pool()
    if executor is not None:
        for _ in range(WORKERS):
            executor.submit(_ready)


class _Done:
    """A finished call, for machines without a pool; errors surface at result() like a future's."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._fn, self._args = fn, args

    def result(self) -> Any:
        return self._fn(*self._args)


def submit_all(calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Future[Any] | _Done]:
    """Start `fn(*args)` for each call on the pool (or defer it in-process); collect with .result()."""
    executor = pool()
    if executor is None:
        return [_Done(fn, args) for fn, args in calls]
    return [executor.submit(fn, *args) for fn, args in calls]
