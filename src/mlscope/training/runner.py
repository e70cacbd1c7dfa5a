"""A training session: validate everything, train each experiment, register, pick the best."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlscope.config import Settings
from mlscope.errors import TrackingUnavailable
from mlscope.tracking import registry
from mlscope.tracking.client import bind_fluent_api, make_client
from mlscope.training.experiments import ExperimentSpec, SelectionRule
from mlscope.training.prepare import Prepared
from mlscope.training.track import RunResult, log_experiment, log_explanation


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
    and move the aliases by `selection`."""
    progress = progress or Progress()
    started = time.perf_counter()
    split = prepared.split
    client = make_client(settings)
    bind_fluent_api(settings)
    try:
        experiment_id = _experiment_id(client, settings.experiment_name, settings.artifact_root)
    except MlflowException as exc:
        raise TrackingUnavailable(f"cannot use tracking store {settings.tracking_uri}: "
                                  f"{registry.first_line(exc)}") from None
    report = TrainReport(settings.experiment_name, experiment_id, settings.model_name, [])
    for spec, job in zip(prepared.specs, prepared.jobs, strict=True):
        progress.experiment_started(spec)
        result = log_experiment(client, experiment_id, spec, split, job, prepared.explain,
                                step=lambda name, spec=spec: progress.step(spec, name))
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
    report.seconds = time.perf_counter() - started
    return report


def _register(client: MlflowClient, settings: Settings, result: RunResult) -> None:
    tags = registry.version_tags(result.spec.model_type, result.spec.name, result.metrics)
    try:
        version = registry.register_version(client, settings.model_name, result.model_uri, result.run_id, tags)
    except MlflowException as exc:
        result.error = f"registration failed: {registry.first_line(exc)}"
        client.set_tag(result.run_id, "mlscope.registry_error", result.error)
        return
    result.version = str(version.version)


def _choose_best(client: MlflowClient, settings: Settings, rule: SelectionRule, report: TrainReport,
                 promote: bool) -> None:
    if not any(r.version for r in report.results):
        return
    found = registry.best_version(client, settings.model_name, rule)
    if found is None:
        return
    version, value = found
    report.best_version = str(version.version)
    report.best_value = value
    report.best = next((r for r in report.results if r.version == report.best_version), None)
    reason = f"best by {rule.metric} ({'higher' if rule.higher_is_better else 'lower'} is better): {value:.4f}"
    current = registry.aliases(client, settings.model_name)
    for alias in ("staging", "production") if promote else ("staging",):
        if current.get(alias) == report.best_version:
            continue
        event = registry.set_alias(client, settings.model_name, alias, report.best_version,
                                   by=f"{settings.user} (mlscope train)", reason=reason)
        report.alias_events.append(event)
