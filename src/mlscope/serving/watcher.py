"""Keeps the served model current: loads the alias's version at start (retrying with backoff while
the registry is unreachable or the alias unset), then polls the alias and swaps in a new version
once it is fully loaded. The old version answers until the swap, so no request fails."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlscope.config import Settings
from mlscope.errors import MlscopeError
from mlscope.serving.contract import Contract
from mlscope.serving.loading import LoadedModel, load_version, resolve_alias
from mlscope.tracking.client import make_client
from mlscope.tracking.registry import first_line

log = logging.getLogger("mlscope.serve")

MAX_BACKOFF_SECONDS = 30.0


@dataclass(frozen=True)
class Target:
    name: str
    alias: str


def _task_words(contract: Contract) -> str:
    return f"{contract.task} ({', '.join(contract.classes)})" if contract.classes else contract.task


Loader = Callable[[Settings, MlflowClient, str, str, str], LoadedModel]


class ModelWatcher:
    """Owns the reference to the served model. `current` is replaced, never mutated."""

    def __init__(self, settings: Settings, target: Target, *, loader: Loader = load_version,
                 client: MlflowClient | None = None) -> None:
        self.settings, self.target, self.loader = settings, target, loader
        self.client = client or make_client(settings)
        self.current: LoadedModel | None = None
        self.contract: Contract | None = None
        self.problem: str | None = "not loaded yet"
        self.swaps = 0
        self.failed_checks = 0
        self._refused: tuple[str, str] | None = None  # (version, why): not reloaded on every poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_change: list[Callable[[LoadedModel], None]] = []
        self._on_check: list[Callable[[ModelWatcher], None]] = []

    def on_change(self, callback: Callable[[LoadedModel], None]) -> None:
        """Call `callback` with every newly served model."""
        self._on_change.append(callback)

    def on_check(self, callback: Callable[[ModelWatcher], None]) -> None:
        """Call `callback` after every check, whatever its outcome (swaps, failed checks)."""
        self._on_check.append(callback)

    def check(self) -> bool:
        """Resolve the alias once and load its version if it is not the one served. True when
        the served model is up to date; problems are recorded in `problem`, never raised."""
        ok = self._check()
        for callback in self._on_check:
            callback(self)
        return ok

    def _check(self) -> bool:
        try:
            version = resolve_alias(self.client, self.target.name, self.target.alias)
            current = self.current
            if current is not None and current.version == version:
                self.problem = None
                return True
            if self._refused is not None and self._refused[0] == version:
                return self._failed(self._refused[1])
            loaded = self.loader(self.settings, self.client, self.target.name, self.target.alias, version)
        except MlscopeError as exc:
            return self._failed(exc.message)
        except MlflowException as exc:
            return self._failed(first_line(exc))
        except Exception as exc:  # noqa: BLE001 - registry outages surface as many exception types
            return self._failed(f"{type(exc).__name__}: {first_line(exc)}")
        if self.contract is not None and loaded.contract.key != self.contract.key:
            served = f"version {current.version if current else '?'}"
            if (loaded.contract.task, loaded.contract.classes) != (self.contract.task, self.contract.classes):
                why = (f"version {version} answers as a {_task_words(loaded.contract)} model, the API as a "
                       f"{_task_words(self.contract)} one ({served}); restart to serve it")
            else:
                why = f"version {version} takes different inputs than the API serves ({served}); restart to serve it"
            self._refused = (version, why)
            return self._failed(why)
        self.contract = self.contract or loaded.contract
        self.current = loaded
        self.swaps += 1 if current is not None else 0
        self.problem = None
        log.warning("serving %s version %s (@%s)", loaded.name, loaded.version, loaded.alias)
        for callback in self._on_change:
            callback(loaded)
        return True

    def _failed(self, problem: str) -> bool:
        self.failed_checks += 1
        if problem != self.problem:
            log.warning("model check failed: %s", problem)
        self.problem = problem
        return False

    def _run(self) -> None:
        failures = 0
        if self.current is not None:  # the caller's first check loaded it: next look after one interval
            self._stop.wait(self.settings.poll_seconds)
        while not self._stop.is_set():
            ok = self.check()
            failures = 0 if ok else failures + 1
            if self.current is not None:
                # A model is served (even if this check failed: registry outage): keep the poll interval,
                # so the registry's recovery, and an alias moved meanwhile, are seen within one interval.
                delay = self.settings.poll_seconds
            else:
                delay = min(self.settings.retry_seconds * 2 ** min(failures - 1, 16), MAX_BACKOFF_SECONDS)
            self._stop.wait(delay)

    def start(self) -> None:
        """Poll in a daemon thread (the first check has usually been done by the caller)."""
        self._thread = threading.Thread(target=self._run, name="mlscope-model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
