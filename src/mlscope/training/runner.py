"""A training session: validate everything, train each experiment, register, pick the best."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlscope.config import Settings
from mlscope.errors import TrackingUnavailable
from mlscope.tracking import registry
from mlscope.tracking.client import bind_fluent_api, make_client
from mlscope.training.experiments import ExperimentSpec, SelectionRule
from mlscope.training.prepare import Prepared
from mlscope.training.track import SESSION_TAG, RunResult, log_experiment, log_explanation

# Two trainers finishing together can each set the aliases from a registry listing that misses the
# other's newest versions; re-reading after setting converges within a round or two.
ALIAS_ROUNDS = 5


class Progress:
    """Callbacks a front end (the CLI's progress bars) receives; the defaults do nothing.
    Any object with these three methods will do."""

    def experiment_started(self, spec: ExperimentSpec) -> None: ...
    def step(self, spec: ExperimentSpec, name: str) -> None: ...
    def experiment_done(self, result: RunResult) -> None: ...
    def explained(self, result: RunResult) -> None: ...


@dataclass
class TrainReport:
    """The outcome of one `mlscope train`."""

    experiment_name: str
    experiment_id: str
    model_name: str
    results: list[RunResult]
    best: RunResult | None = None
    best_version: str | None = None
    best_value: float | None = None
    alias_events: list[registry.AuditEvent] = field(default_factory=list)
    seconds: float = 0.0
    selection: SelectionRule = field(default_factory=SelectionRule)
    selection_note: str | None = None  # set when the plan's metric is not the task's and its headline is used

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if r.status != "FINISHED" or r.version is None]


def _experiment_id(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = f"{artifact_root.rstrip('/')}/{name}" if artifact_root else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def train(
    settings: Settings,
    prepared: Prepared,
    selection: SelectionRule,
    *,
    promote: bool = False,
    register: bool = True,
    progress: Progress | None = None,
) -> TrainReport:
    """Log the prepared experiments to MLflow (their fits are already running), register each model
    and move the aliases by `selection` (or the task's headline when `selection` names a metric the task
    does not log)."""
    progress = progress or Progress()
    selection, note = selection.for_task(prepared.split.dataset.task)
    started = time.perf_counter()
    split = prepared.split
    client = make_client(settings)
    bind_fluent_api(settings)
    try:
        experiment_id = _experiment_id(client, settings.experiment_name, settings.artifact_root)
    except MlflowException as exc:
        raise TrackingUnavailable(f"cannot use tracking store {settings.tracking_uri}: "
                                  f"{registry.first_line(exc)}") from None
    report = TrainReport(settings.experiment_name, experiment_id, settings.model_name, [], selection=selection,
                         selection_note=note)
    session = uuid.uuid4().hex
    for spec, job in zip(prepared.specs, prepared.jobs, strict=True):
        progress.experiment_started(spec)
        result = log_experiment(client, experiment_id, spec, split, job, prepared.explain,
                                step=lambda name, spec=spec: progress.step(spec, name), session=session)
        if result.status == "FINISHED" and register:
            progress.step(spec, "register")
            _register(client, settings, result)
        report.results.append(result)
        progress.experiment_done(result)
    if register:
        _choose_best(client, settings, selection, report, promote)
    for result in report.results:
        if result.pending_explanation is not None:
            log_explanation(client, result)
            progress.explained(result)
    end_stray_runs(client, experiment_id, session, report.results)
    report.seconds = time.perf_counter() - started
    return report


def _register(client: MlflowClient, settings: Settings, result: RunResult) -> None:
    tags = registry.version_tags(result.spec.model_type, result.spec.name, result.metrics)
    try:
        version = registry.register_version(client, settings.model_name, result.model_uri, result.run_id, tags)
    except MlflowException as exc:
        result.error = f"registration failed: {registry.first_line(exc)}"
        try:
            client.set_tag(result.run_id, "mlscope.registry_error", result.error)
        except MlflowException:
            pass  # the store is failing; the report carries the error
        return
    result.version = str(version.version)


def _choose_best(client: MlflowClient, settings: Settings, rule: SelectionRule, report: TrainReport,
                 promote: bool) -> None:
    if not any(r.version for r in report.results):
        return
    for _ in range(ALIAS_ROUNDS):
        found = registry.best_version(client, settings.model_name, rule)
        if found is None:
            return
        version, value = found
        report.best_version = str(version.version)
        report.best_value = value
        report.best = next((r for r in report.results if r.version == report.best_version), None)
        reason = f"best by {rule.metric} ({'higher' if rule.higher_is_better else 'lower'} is better): {value:.4f}"
        current = registry.aliases(client, settings.model_name)
        stale = [alias for alias in (("staging", "production") if promote else ("staging",))
                 if current.get(alias) != report.best_version]
        if not stale:
            return
        for alias in stale:
            event = registry.set_alias(client, settings.model_name, alias, report.best_version,
                                       by=f"{settings.user} (mlscope train)", reason=reason)
            report.alias_events.append(event)


def end_stray_runs(client: MlflowClient, experiment_id: str, session: str, results: list[RunResult]) -> None:
    """No run of this session is left RUNNING. A run whose end was lost while the tracking server was
    down gets its status again; a run the server created twice (the response to create_run lost, the
    client retried) is ended FAILED and says which run holds the results."""
    ours = {r.run_id: r for r in results if r.run_id}
    query = f"tags.`{SESSION_TAG}` = '{session}' and attributes.status = 'RUNNING'"
    try:
        running = client.search_runs([experiment_id], filter_string=query, max_results=1000)
    except MlflowException:
        return  # the store is down again: nothing more can be done from here
    for run in running:
        run_id = run.info.run_id
        try:
            if run_id in ours:
                client.set_terminated(run_id, "FINISHED" if ours[run_id].status == "FINISHED" else "FAILED")
                continue
            twin = next((r.run_id for r in results if r.spec.name == run.info.run_name and r.run_id), None)
            client.set_tag(run_id, "mlscope.error", "created twice by a retried request while the tracking "
                           f"server failed; run {twin or 'of this name'} holds the results")
            client.set_terminated(run_id, "FAILED")
        except MlflowException:
            continue
