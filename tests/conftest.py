"""Shared fixtures: real temporary MLflow stores (SQLite + local artifacts), trained once per session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mlscope.cli import app
from mlscope.config import Settings
from tests.live import browser  # noqa: F401 - one Chromium per session, shared by every browser test


@dataclass(frozen=True)
class Store:
    """A temporary MLflow store and the environment that points mlscope at it."""

    root: Path

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def env(self) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.uri, "MLFLOW_REGISTRY_URI": self.uri, "MLSCOPE_ARTIFACT_ROOT": str(self.root / "artifacts"),
                "MLSCOPE_USER": "tester",
                "MLSCOPE_MONITOR_DIR": str(self.root / "monitoring")}

    def settings(self, **overrides: object) -> Settings:
        return Settings(**{"tracking_uri": self.uri, "registry_uri": self.uri,
                           "artifact_root": str(self.root / "artifacts"), "user": "tester",
                           "monitor_dir": self.root / "monitoring", **overrides})

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def experiment(self, name: str) -> str:
        """The id of experiment `name`, created with its artifacts inside this store's folder (MLflow's
        default, ./mlruns, would write into the directory the tests run from)."""
        client = self.client()
        found = client.get_experiment_by_name(name)
        return found.experiment_id if found else client.create_experiment(
            name, artifact_location=(self.root / "artifacts" / name).as_uri())


def invoke(store: Store, *args: str) -> object:
    """Run the real CLI in-process, as a user would from a shell."""
    return CliRunner().invoke(app, list(args), env=store.env, catch_exceptions=False)


@contextmanager
def mlflow_state_kept() -> Iterator[None]:
    """MLflow's process-wide URIs (module globals, unset = None) and every MLFLOW_* variable as they were:
    training, the apps and model loading bind them to a test's store; a leftover would send a later
    test's runs or versions there (Settings reads MLFLOW_REGISTRY_URI)."""
    import os

    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    before = {key: value for key, value in os.environ.items() if key.startswith("MLFLOW_")}
    tracking, registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    try:
        yield
    finally:
        mlflow.set_tracking_uri(tracking)
        mlflow.set_registry_uri(registry)
        for key in [key for key in os.environ if key.startswith("MLFLOW_")]:
            del os.environ[key]
        os.environ.update(before)


@pytest.fixture(autouse=True)
def _restore_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """mlflow.set_tracking_uri/set_registry_uri also write MLFLOW_*_URI into os.environ; undo that
    after each test so no test inherits another's store."""
    import os

    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        absent = key not in os.environ
        monkeypatch.setenv(key, os.environ.get(key, ""))  # records the value, or that there was none
        if absent:
            monkeypatch.delenv(key)
    yield


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, object]]:
    """The four built-in experiments trained once with --promote, shared read-only by many tests."""
    store = Store(tmp_path_factory.mktemp("trained"))
    result = invoke(store, "train", "--promote")
    assert result.exit_code == 0, result.output
    yield store, result


@pytest.fixture(scope="session")
def user_logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, object]:
    """Experiments logged as MLflow users log them (tests/user_runs.py), shared read-only: `autolog` (real
    mlflow.sklearn.autolog runs, a GridSearchCV with child runs), `scored` and `nested` (start_run(nested=True))."""
    from tests.user_runs import log_autolog_experiment, log_nested_experiment, log_scored_experiment

    store = Store(tmp_path_factory.mktemp("user-logged"))
    autolog = log_autolog_experiment(store)
    log_scored_experiment(store)
    log_nested_experiment(store)
    return store, autolog


def copy_of(store: Store, root: Path) -> Store:
    """A copy of `store`'s database in `root` (its artifacts stay shared): for tests that change aliases
    or tags without touching the session's trained store."""
    import shutil

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(store.root / "mlflow.db", root / "mlflow.db")
    return Store(root)


# PostgreSQL- and Chromium-marked tests skip with the reason where the service is missing, except on CI.
REQUIRED_ON_CI = {"postgres": "PostgreSQL", "browser": "Chromium", "compose": "docker compose or docker-compose"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A skipped `postgres` or `browser` test is a failure when CI=true: CI must not pass without them."""
    import os

    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get("CI") != "true":
        return
    for marker, service in REQUIRED_ON_CI.items():
        if item.get_closest_marker(marker) is not None:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            report.outcome = "failed"
            report.longrepr = f"{marker} test skipped while CI=true ({service} is required on CI): {reason}"
            return
