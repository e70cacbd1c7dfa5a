"""Failure tests of the production stack ("nothing lost"): a real `mlflow server` over PostgreSQL, with
real `mlscope` processes against it.

1. The tracking server is SIGKILLed while `mlscope train --promote` logs, and started again: training
   finishes, no run is left RUNNING, every finished run is complete, duplicates are marked.
2. The database under a running tracking server, dashboard and prediction API is stopped and started
   again (a PostgreSQL of the test's own: the machine's one is never touched): the dashboard answers
   503 with a clear error, the API keeps predicting from memory and says it is degraded; both recover.
3. Two `mlscope train --promote` at once into the same experiment and model: distinct, consecutive
   versions, one per run, and both aliases on the best version.

Plus a fast check of the prediction API's watcher alone: while it serves a model, a failing registry
is polled at the configured interval (no backoff), so its recovery is seen within one interval.

Each test prints what it measured (outage and recovery times) on one `measured:` line (pytest -s)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pandas as pd
import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mlscope.cli import app as cli_app
from mlscope.config import Settings
from tests import own_postgres, postgres
from tests.conftest import mlflow_state_kept
from tests.integration.test_serve import THIRD_CLASS_MAN
from tests.live import free_port, screenshot
from tests.tracking_server import ServerProcess

T = TypeVar("T")
EXPERIMENT = "titanic"
MODEL = "titanic-survival"
DEFAULT_RUNS = ("rf-baseline", "rf-tuned", "logistic-regression", "svm")
REQUIRED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss",
                    "cv_roc_auc_mean", "cv_roc_auc_std", "cv_accuracy_mean", "cv_accuracy_std")
REQUIRED_ARTIFACTS = ("confusion_matrix.png", "roc_curve.png", "roc_curve.json", "predictions.csv", "cv_folds.json",
                      "classification_report.json", "feature_importance.json")
OUTAGE_SECONDS = 15  # how long test 2 keeps its database down


# ---------------------------------------------------------------- helpers


class Service:
    """A real `mlscope ...` subprocess in its own process group, logging to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], folder: Path) -> None:
        self.name, self.args, self.env, self.folder = name, args, env, folder
        self.log = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> Service:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "mlscope", *self.args], env=self.env,
                                            cwd=self.folder, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.started = time.monotonic()
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, seconds: float) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not exit within {seconds:.0f} s\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            text = "(no log)"
        return f"----- {self.name} ({self.log}) -----\n{text[-chars:]}"

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 20 s; idempotent."""
        if self.process is None:
            return
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # the group may outlive its leader (worker processes): make sure nothing of it is left
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def server_tail(server: ServerProcess, chars: int = 2000) -> str:
    try:
        return f"----- mlflow server ({server.log}) -----\n{server.log.read_text(errors='replace')[-chars:]}"
    except OSError:
        return "----- mlflow server: no log -----"


def wait_for(what: str, probe: Callable[[], T | None], seconds: float, logs: Callable[[], str] = lambda: "",
             interval: float = 0.1) -> T:
    """Poll `probe` until it returns something other than None/False; fail after `seconds` with the logs.
    A connection error or MlflowException means "not yet"; a failed assertion inside `probe` fails at once."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while True:
        try:
            found = probe()
        except (httpx.TransportError, MlflowException) as exc:  # not answering yet: try again
            found, last = None, exc
        if found is not None and found is not False:
            return found
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {seconds:.0f} s waiting for {what} (last error: {last!r})\n{logs()}")
        time.sleep(interval)


def same_answer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two API answers agree on everything but their own request ids."""
    return {k: v for k, v in a.items() if k != "request_id"} == {k: v for k, v in b.items() if k != "request_id"}


def child_env(tracking_uri: str, **extra: str) -> dict[str, str]:
    """The test's environment without MLflow/mlscope settings, pointed at `tracking_uri`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLSCOPE_"))}
    return {**env, "MLFLOW_TRACKING_URI": tracking_uri, "MLSCOPE_USER": "tester", "PYTHONUNBUFFERED": "1",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **extra}


def http_client(url: str) -> MlflowClient:
    return MlflowClient(tracking_uri=url, registry_uri=url)


def runs_of(client: MlflowClient, experiment: str = EXPERIMENT) -> list[Any]:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], run_view_type=ViewType.ALL, max_results=1000)


def versions_of(client: MlflowClient, name: str = MODEL) -> list[Any]:
    return list(client.search_model_versions(f"name = '{name}'", max_results=1000))


def expected_best(client: MlflowClient, versions: list[Any]) -> str:
    """The selection rule of experiments.toml, computed here from the runs: highest roc_auc, ties by
    higher accuracy, then the oldest version."""
    scored = []
    for version in versions:
        metrics = client.get_run(version.run_id).data.metrics
        scored.append((-metrics["roc_auc"], -metrics["accuracy"], int(version.version)))
    return str(min(scored)[2])


def load_registered(url: str, version: str) -> Any:
    """Version `version` of the model, loaded through the tracking server (MLflow's fluent API)."""
    import mlflow.sklearn

    from mlscope.tracking.client import allow_model_loading, bind_fluent_api

    settings = Settings(tracking_uri=url, registry_uri=url, user="tester")
    bind_fluent_api(settings)
    with allow_model_loading(settings):
        return mlflow.sklearn.load_model(f"models:/{MODEL}/{version}")


def check_complete_run(client: MlflowClient, url: str, run: Any, version: Any, titanic: pd.DataFrame,
                       folder: Path) -> list[str]:
    """Everything a finished run must have, read back through the server; the problems found."""
    problems: list[str] = []
    run_id, name = run.info.run_id, run.info.run_name
    metrics = run.data.metrics
    missing = [m for m in REQUIRED_METRICS if m not in metrics or math.isnan(metrics[m])]
    if missing:
        problems.append(f"{name} {run_id}: metrics missing {missing}")
    history = client.get_metric_history(run_id, "cv_roc_auc")
    if sorted(m.step for m in history) != list(range(5)):
        problems.append(f"{name}: cv_roc_auc fold history has steps {sorted(m.step for m in history)}")
    top = {a.path for a in client.list_artifacts(run_id)}
    absent = [a for a in REQUIRED_ARTIFACTS if a not in top]
    if absent:
        problems.append(f"{name}: artifacts missing {absent} (has {sorted(top)})")
        return problems
    target = folder / run_id
    target.mkdir(parents=True, exist_ok=True)
    for artifact in ("roc_curve.json", "cv_folds.json", "predictions.csv", "confusion_matrix.png"):
        client.download_artifacts(run_id, artifact, str(target))
    json.loads((target / "roc_curve.json").read_text())
    folds = json.loads((target / "cv_folds.json").read_text())
    if len(folds["values"]["roc_auc"]) != 5:
        problems.append(f"{name}: cv_folds.json has {len(folds['values']['roc_auc'])} folds")
    if (target / "confusion_matrix.png").read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        problems.append(f"{name}: confusion_matrix.png is not a PNG")
    predictions = pd.read_csv(target / "predictions.csv")
    if len(predictions) != 179:
        problems.append(f"{name}: predictions.csv has {len(predictions)} rows, not 179")
    if "explanations" in top:
        from mlscope.explain.service import stored_explanation

        stored = stored_explanation(client, run_id)  # parses the whole logged explanation
        if stored is None or stored[0].values.shape != (179, 7):
            problems.append(f"{name}: explanations/test.json missing or incomplete")
    elif not run.data.tags.get("mlscope.explain_error"):
        problems.append(f"{name}: neither explanations/ nor an mlscope.explain_error tag")
    if version is None:
        problems.append(f"{name}: not registered")
        return problems
    # The registered model answers exactly what the run logged for its test rows.
    model = load_registered(url, str(version.version))
    rows = titanic.set_index("PassengerId").loc[predictions["PassengerId"]]
    proba = model.predict_proba(rows[["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]])[:, 1]
    worst = float(abs(proba - predictions["probability"].to_numpy()).max())
    if worst > 1e-9:
        problems.append(f"{name}: the registered model differs from the logged predictions by {worst}")
    return problems


@pytest.fixture
def pg_uri() -> Iterator[str]:
    with postgres.database_or_skip("mlscope_failures") as uri:
        yield uri


@pytest.fixture
def fluent_uri_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """MLflow's process-wide state as it was before the test: load_registered and an in-process
    `mlscope train` bind it to a test server."""
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar per downloaded file
    with mlflow_state_kept():
        yield


# ---------------------------------------------------------------- 1. tracking server killed mid-training


@pytest.mark.postgres
@pytest.mark.slow
def test_tracking_server_killed_during_training_loses_nothing(pg_uri: str, tmp_path: Path,
                                                             fluent_uri_restored: None) -> None:
    server = ServerProcess(pg_uri, tmp_path / "artifacts", tmp_path / "server.log")
    server.start()
    # MLflow's default 7 retries are kept; a backoff factor of 1 keeps the waits short (0, 2, 4, 8 ... s).
    trainer = Service("train", ["train", "--promote"], child_env(server.url, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1"),
                      tmp_path)
    logs = lambda: f"{trainer.tail()}\n{server_tail(server)}"  # noqa: E731
    client = http_client(server.url)
    try:
        trainer.start()

        def first_run() -> list[Any] | None:
            if not trainer.running():
                pytest.fail(f"the trainer exited before the kill\n{logs()}")
            return runs_of(client) or None

        at_kill = wait_for("the trainer's first run", first_run, 180, logs, interval=0.05)
        killed = time.monotonic()
        server.kill()
        seen = [(r.info.run_name, r.info.status) for r in at_kill]
        time.sleep(4)  # the outage: the trainer's requests fail and MLflow's client retries them
        assert trainer.running(), f"the trainer ended while the server was down\n{logs()}"
        server.start()
        restarted = time.monotonic()
        code = trainer.wait(300)
        finished = time.monotonic()
        assert code == 0, f"mlscope train exited {code} after the tracking server restart\n{logs()}"

        runs = runs_of(client)
        statuses = Counter(r.info.status for r in runs)
        assert set(statuses) <= {"FINISHED", "FAILED"}, f"runs left {dict(statuses)}\n{logs()}"
        done = [r for r in runs if r.info.status == "FINISHED"]
        assert sorted(r.info.run_name for r in done) == sorted(DEFAULT_RUNS), \
            f"finished runs {sorted(r.info.run_name for r in done)}\n{logs()}"
        failed = [r for r in runs if r.info.status == "FAILED"]
        unexplained = [r.info.run_id for r in failed if not r.data.tags.get("mlscope.error")]
        assert not unexplained, f"FAILED runs without mlscope.error: {unexplained}\n{logs()}"

        versions = versions_of(client)
        by_run = Counter(v.run_id for v in versions)
        assert all(count == 1 for count in by_run.values()), f"runs registered more than once: {by_run}"
        assert set(by_run) == {r.info.run_id for r in done}, f"registered runs {set(by_run)} vs finished runs"
        assert sorted(int(v.version) for v in versions) == list(range(1, len(versions) + 1))

        from mlscope.data.loader import load_titanic

        titanic = load_titanic().frame
        version_of = {v.run_id: v for v in versions}
        problems = [p for r in done for p in check_complete_run(client, server.url, r, version_of.get(r.info.run_id),
                                                                 titanic, tmp_path / "downloaded")]
        assert not problems, "\n".join(problems) + f"\n{logs()}"

        best = expected_best(client, versions)
        aliases = client.get_registered_model(MODEL).aliases
        assert aliases.get("staging") == best and aliases.get("production") == best, (aliases, best)
        print(f"\nmeasured: runs at the kill {seen}; server down {restarted - killed:.1f} s (incl. restart); "
              f"trainer done {finished - restarted:.1f} s after the restart, {finished - trainer.started:.1f} s in all; "
              f"runs {dict(statuses)}; failed duplicates {[r.info.run_name for r in failed]}")
    finally:
        trainer.stop()
        server.stop()


# ---------------------------------------------------------------- 2. database restarted under the stack


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


@pytest.mark.postgres
@pytest.mark.browser
@pytest.mark.slow
def test_database_restart_under_dashboard_and_api(tmp_path: Path, fluent_uri_restored: None, browser: Any) -> None:
    reason = own_postgres.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with own_postgres.own_postgres() as pg:
        server = ServerProcess(pg.uri, tmp_path / "artifacts", tmp_path / "server.log")
        ui_port, api_port = free_port(), free_port()
        env = child_env(server.url)
        dashboard = Service("ui", ["ui", "--port", str(ui_port)], env, tmp_path)
        api = Service("serve", ["serve", "--port", str(api_port), "--poll-seconds", "1"], env, tmp_path)
        ui_url, api_url = f"http://127.0.0.1:{ui_port}", f"http://127.0.0.1:{api_port}"
        http = httpx.Client(timeout=60)

        def logs() -> str:
            return "\n".join([dashboard.tail(), api.tail(), server_tail(server),
                              f"----- postgres -----\n{pg.log_tail()}"])

        try:
            server.start()
            result = CliRunner().invoke(cli_app, ["train", "--promote", "--only", "logistic-regression",
                                                  "--only", "svm"],
                                        env={"MLFLOW_TRACKING_URI": server.url, "MLFLOW_REGISTRY_URI": server.url,
                                             "MLSCOPE_USER": "tester"},
                                        catch_exceptions=False)
            (tmp_path / "train.log").write_text(result.output)
            assert result.exit_code == 0, result.output
            dashboard.start()
            api.start()
            wait_for("the dashboard's /health", lambda: http.get(f"{ui_url}/health").status_code == 200, 60, logs)
            wait_for("the API's /ready", lambda: http.get(f"{api_url}/ready").status_code == 200, 90, logs)

            runs_before = http.get(f"{ui_url}/api/runs", params={"experiment": EXPERIMENT})
            experiments_before = http.get(f"{ui_url}/api/experiments")
            model_before = http.get(f"{ui_url}/api/models/{MODEL}")
            assert {runs_before.status_code, experiments_before.status_code, model_before.status_code} == {200}, logs()
            assert len(runs_before.json()["runs"]) == 2, runs_before.json()
            ready = http.get(f"{api_url}/ready").json()
            assert ready["model"]["version"] == "1" and ready["registry_problem"] is None, ready
            answer = http.post(f"{api_url}/predict", json=THIRD_CLASS_MAN).json()
            assert answer["model"]["version"] == "1", answer

            # ---- the database goes away
            pg.stop("fast")
            down = time.monotonic()

            def dashboard_reports_outage() -> httpx.Response | None:
                reply = http.get(f"{ui_url}/api/runs", params={"experiment": EXPERIMENT})
                return reply if reply.status_code != 200 else None  # 200 meanwhile: its 5 s cache of runs

            outage = wait_for("the dashboard to report the outage", dashboard_reports_outage, 90, logs, interval=0.5)
            ui_detected = time.monotonic() - down
            body = _json(outage)
            assert outage.status_code == 503, f"{outage.status_code} {body}\n{logs()}"
            assert body["error"]["code"] == "tracking_unavailable", body
            assert body["error"]["message"].startswith(f"the tracking server at {server.url} is unavailable: "), body
            listed = http.get(f"{ui_url}/api/experiments")
            assert listed.status_code == 503 and _json(listed)["error"]["message"], _json(listed)
            # What the user sees: the runs view opens, its banner says what failed and offers Retry.
            tab = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            tab.goto(f"{ui_url}/experiments/{EXPERIMENT}")
            tab.wait_for_selector("[data-banner]:not([hidden])", timeout=60_000)
            banner = tab.inner_text("[data-banner-text]")
            assert f"the tracking server at {server.url} is unavailable" in banner and "could not be loaded" in banner
            assert tab.is_visible("[data-banner-retry]")
            screenshot(tab, "stack-database-down")

            def api_degraded() -> dict[str, Any] | None:
                state = http.get(f"{api_url}/ready")
                assert state.status_code == 200, f"{state.status_code} {_json(state)}\n{logs()}"
                return state.json() if state.json()["registry_problem"] else None

            degraded = wait_for("the API to report the registry problem", api_degraded, 90, logs, interval=0.5)
            assert degraded["registry_problem"].startswith(f"the tracking server at {server.url} is unavailable"), degraded
            api_detected = time.monotonic() - down
            assert http.get(f"{api_url}/health").status_code == 200
            assert http.get(f"{api_url}/model").json()["registry_problem"]

            # A sustained outage: the API answers every prediction from the model in memory, the
            # dashboard keeps answering 503 (no 500, no hang).
            predictions = dashboard_answers = 0
            while time.monotonic() - down < OUTAGE_SECONDS:
                during = http.post(f"{api_url}/predict", json=THIRD_CLASS_MAN)
                assert during.status_code == 200, f"{during.status_code} {_json(during)}\n{logs()}"
                assert same_answer(during.json(), answer), (during.json(), answer)
                predictions += 1
                if predictions % 5 == 0:
                    reply = http.get(f"{ui_url}/api/runs", params={"experiment": EXPERIMENT})
                    assert reply.status_code == 503, f"{reply.status_code} {_json(reply)}\n{logs()}"
                    dashboard_answers += 1
                time.sleep(0.2)

            # ---- the database comes back
            pg.start()
            up = time.monotonic()
            def dashboard_reads() -> httpx.Response | None:
                reply = http.get(f"{ui_url}/api/runs", params={"experiment": EXPERIMENT})
                assert reply.status_code in (200, 503), f"{reply.status_code} {_json(reply)}\n{logs()}"
                return reply if reply.status_code == 200 else None

            runs_after = wait_for("the dashboard to read runs again", dashboard_reads, 90, logs, interval=0.5)
            ui_recovered = time.monotonic() - up
            tab.click("[data-banner-retry]")  # the user's Retry now shows the runs, banner gone
            tab.wait_for_function("() => document.querySelectorAll('[data-rows] .row').length === 2", timeout=30_000)
            assert tab.locator("[data-banner]").is_hidden()
            screenshot(tab, "stack-database-back")
            tab.context.close()
            assert runs_after.json() == runs_before.json()
            assert http.get(f"{ui_url}/api/experiments").json() == experiments_before.json()
            assert http.get(f"{ui_url}/api/models/{MODEL}").json() == model_before.json()
            wait_for("the API to clear its registry problem",
                     lambda: http.get(f"{api_url}/ready").json()["registry_problem"] is None, 90, logs, interval=0.5)
            api_recovered = time.monotonic() - up
            # The watcher polls at its interval while it serves a model, even when the registry fails.
            assert api_recovered <= 1 + 8, f"the API took {api_recovered:.1f} s to see the registry again"
            assert same_answer(http.post(f"{api_url}/predict", json=THIRD_CLASS_MAN).json(), answer)

            # ---- a promotion after the recovery reaches the API
            moved = http.post(f"{ui_url}/api/models/{MODEL}/aliases",
                              json={"alias": "production", "version": "2", "reason": "after the database restart"})
            assert moved.status_code == 200, f"{moved.status_code} {_json(moved)}\n{logs()}"
            promoted = time.monotonic()
            def served_by_version_2() -> dict[str, Any] | None:
                reply = http.post(f"{api_url}/predict", json=THIRD_CLASS_MAN)
                assert reply.status_code == 200, f"{reply.status_code} {_json(reply)}\n{logs()}"
                return reply.json() if reply.json()["model"]["version"] == "2" else None

            swapped = wait_for("the API to serve version 2", served_by_version_2, 60, logs, interval=0.2)
            picked_up = time.monotonic() - promoted
            assert swapped["probability"] != answer["probability"]
            model_info = http.get(f"{api_url}/model").json()
            assert model_info["version"] == "2" and model_info["registry_problem"] is None and model_info["swaps"] == 1
            print(f"\nmeasured: dashboard 503 after {ui_detected:.1f} s ({body['error']['message']!r}), "
                  f"API degraded after {api_detected:.1f} s ({degraded['registry_problem'][:100]!r}); "
                  f"database down {up - down:.1f} s ({predictions} predictions, {dashboard_answers} dashboard 503s "
                  f"meanwhile); after the restart "
                  f"dashboard 200 in {ui_recovered:.1f} s, API registry ok in {api_recovered:.1f} s; "
                  f"new production version served {picked_up:.1f} s after the promotion")
        finally:
            http.close()
            api.stop()
            dashboard.stop()
            server.stop()


# ---------------------------------------------------------------- 3. two trainers at once


@pytest.mark.postgres
@pytest.mark.slow
def test_two_trainers_at_once_get_distinct_versions_and_converge(pg_uri: str, tmp_path: Path) -> None:
    server = ServerProcess(pg_uri, tmp_path / "artifacts", tmp_path / "server.log")
    subset = ["--only", "rf-baseline", "--only", "logistic-regression", "--only", "svm"]
    trainers = [Service(f"train-{n}", ["train", "--promote", *subset], child_env(server.url), tmp_path)
                for n in (1, 2)]

    def logs() -> str:
        return "\n".join([*(t.tail() for t in trainers), server_tail(server)])

    try:
        server.start()
        started = time.monotonic()
        for trainer in trainers:
            trainer.start()
        codes = [trainer.wait(300) for trainer in trainers]
        took = time.monotonic() - started
        assert codes == [0, 0], f"exit codes {codes}\n{logs()}"

        client = http_client(server.url)
        runs = runs_of(client)
        assert Counter(r.info.status for r in runs) == Counter({"FINISHED": 6}), logs()
        versions = versions_of(client)
        numbers = sorted(int(v.version) for v in versions)
        assert numbers == list(range(1, len(runs) + 1)), f"versions {numbers} for {len(runs)} runs\n{logs()}"
        by_run = Counter(v.run_id for v in versions)
        assert set(by_run) == {r.info.run_id for r in runs} and set(by_run.values()) == {1}, by_run

        best = expected_best(client, versions)
        aliases = client.get_registered_model(MODEL).aliases
        assert aliases.get("staging") == best and aliases.get("production") == best, f"{aliases} best {best}\n{logs()}"
        from mlscope.tracking import registry

        found = registry.best_version(client, MODEL, _selection_rule())
        assert found is not None and str(found[0].version) == best
        print(f"\nmeasured: two trainers finished in {took:.1f} s; versions {numbers}; aliases {aliases}")
    finally:
        for trainer in trainers:
            trainer.stop()
        server.stop()


def _selection_rule() -> Any:
    """The shipped [selection] rule of experiments.toml."""
    from mlscope.training.experiments import load_plan

    return load_plan(None).selection


# ---------------------------------------------------------------- the watcher alone, during a registry outage


def test_watcher_keeps_its_poll_interval_while_the_registry_fails() -> None:
    """Test 2 at the scale of the watcher, with a fake registry (fast, exact timing): while a model is
    served, failed checks are retried at `poll_seconds`, not with the start-up backoff (which grows to
    30 s and left the API up to 30 s behind a registry that was back)."""
    from types import SimpleNamespace

    from mlscope.serving.watcher import ModelWatcher, Target

    class Registry:
        down = False

        def get_model_version_by_alias(self, name: str, alias: str) -> Any:
            if self.down:
                raise MlflowException("API request to the tracking server failed: too many 503 error responses")
            return SimpleNamespace(version="1")

    def loader(*_: Any) -> Any:
        return SimpleNamespace(name=MODEL, version="1", alias="production", contract=SimpleNamespace(key="k"))

    poll = 0.05
    registry = Registry()
    settings = Settings(tracking_uri="http://127.0.0.1:9", poll_seconds=poll, retry_seconds=poll, user="tester")
    watcher = ModelWatcher(settings, Target(MODEL, "production"), loader=loader, client=registry)  # type: ignore[arg-type]
    assert watcher.check() and watcher.current is not None
    watcher.start()
    try:
        registry.down = True
        wait_for("a failed check", lambda: watcher.problem, 5)
        time.sleep(2.0)  # the outage; the old backoff would wait 0.05 * 2**6 = 3.2 s by now
        failed = watcher.failed_checks
        registry.down = False
        back = time.monotonic()
        wait_for("the watcher to see the registry again", lambda: watcher.problem is None, 10, interval=0.01)
        recovered = time.monotonic() - back
    finally:
        watcher.stop()
    assert watcher.current is not None and watcher.current.version == "1" and watcher.swaps == 0
    assert failed >= 10, f"only {failed} checks in a 2 s outage at a {poll} s interval"
    assert recovered <= 1.0, f"the registry was back {recovered:.2f} s before the watcher noticed"
