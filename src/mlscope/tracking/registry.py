"""Model Registry: versions, aliases, the best-version rule, and the alias audit trail.

Every alias change writes one version tag `mlscope.audit.<alias>.<utc timestamp>` whose value is a
JSON event {action, alias, version, previous_version, by, at, reason}. The tag sits on the version
that received the alias (or, for a removal, the one that lost it), so the history lives in MLflow
and survives any cache."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlscope import task as tasks
from mlscope.errors import BadInput, NotFound
from mlscope.tracking.client import needs_tracking_server, tracking_failure
from mlscope.tracking.version_links import linked_run_id, logged_model_id
from mlscope.training.experiments import SelectionRule

AUDIT_PREFIX = "mlscope.audit."
METRIC_TAG = "metric."


@dataclass(frozen=True)
class AuditEvent:
    """One alias change, as recorded in a version tag."""

    action: str  # "set", "move" or "remove"
    alias: str
    version: str
    previous_version: str | None
    by: str
    at: str
    reason: str


def first_line(exc: Exception) -> str:
    translated = needs_tracking_server(exc)
    if translated is not None:
        return translated.message
    unavailable = tracking_failure(exc)
    if unavailable is not None:
        return unavailable
    message = getattr(exc, "message", None) or str(exc)
    return message.strip().splitlines()[0] if message.strip() else type(exc).__name__


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(name, description="Registered by mlscope.")
        except MlflowException as race:
            if race.error_code != "RESOURCE_ALREADY_EXISTS":
                raise


def register_version(client: MlflowClient, name: str, model_uri: str, run_id: str,
                     tags: dict[str, str]) -> ModelVersion:
    """A new version of `name` from a logged model, with tags. A `models:/<model_id>` source (what
    MLflow 3's log_model returns) is sent with its model id: an MLflow tracking server refuses such a
    source without it (a local store does not check)."""
    ensure_registered_model(client, name)
    version = client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags,
                                          model_id=logged_model_id(model_uri))
    return version


# every task's test metrics and cross-validated headline (a run has only its own task's)
HEADLINE_METRICS = tuple(dict.fromkeys(
    [name for task in tasks.TASKS.values() for name in task.metric_names]
    + [f"cv_{task.headline}_mean" for task in tasks.TASKS.values()]))


def version_tags(model_type: str, run_name: str, metrics: dict[str, float]) -> dict[str, str]:
    """Tags of a new version: model type, run name and headline metrics (`metric.<name>`)."""
    tags = {"model_type": model_type, "run_name": run_name}
    tags.update({f"{METRIC_TAG}{key}": repr(float(metrics[key])) for key in HEADLINE_METRICS if key in metrics})
    return tags


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            _require_model(client, name)
            raise NotFound(f"model '{name}' has no version {version}", field="version") from None
        raise


def _require_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(f"registered model '{name}' not found", field="model") from None
        raise


def list_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """All versions of a registered model, oldest first."""
    _require_model(client, name)
    versions = client.search_model_versions(f"name = '{_quote(name)}'")
    return sorted(versions, key=lambda v: int(v.version))


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """alias -> version of a registered model."""
    model = client.get_registered_model(name)
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def _metric(client: MlflowClient, version: ModelVersion, key: str) -> float | None:
    raw = (version.tags or {}).get(f"{METRIC_TAG}{key}")
    if raw is None:
        try:
            run_id = linked_run_id(client, version)
            if run_id is None:
                return None
            value = client.get_run(run_id).data.metrics.get(key)
        except MlflowException:
            return None
        return None if value is None or math.isnan(value) else float(value)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return None if value is None or math.isnan(value) else value


def best_version(client: MlflowClient, name: str, rule: SelectionRule) -> tuple[ModelVersion, float] | None:
    """The best version by `rule` (metric, direction, then tie breaker, then oldest version).
    Versions without the metric are not candidates."""
    scored = []
    for version in list_versions(client, name):
        value = _metric(client, version, rule.metric)
        if value is None:
            continue
        tie = _metric(client, version, rule.tie_breaker) if rule.tie_breaker else None
        primary = -value if rule.higher_is_better else value
        tie_key = math.inf if tie is None else (-tie if not rule.tie_breaker or tasks.higher_is_better(rule.tie_breaker)
                                                else tie)
        scored.append(((primary, tie_key, int(version.version)), version, value))
    if not scored:
        return None
    scored.sort(key=lambda item: item[0])
    _, version, value = scored[0]
    return version, value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _record(client: MlflowClient, name: str, event: AuditEvent) -> None:
    stamp = event.at.replace(":", "").replace("-", "")
    key = f"{AUDIT_PREFIX}{event.alias}.{stamp}"
    client.set_model_version_tag(name, event.version, key, json.dumps(asdict(event)))


def set_alias(client: MlflowClient, name: str, alias: str, version: str, *, by: str, reason: str) -> AuditEvent:
    """Point `alias` at `version` and record who, when, from which version and why."""
    get_version(client, name, version)
    if not alias or alias != alias.strip():
        raise BadInput("alias must be a non-empty name without surrounding spaces", field="alias")
    previous = aliases(client, name).get(alias)
    try:
        client.set_registered_model_alias(name, alias, str(version))
    except MlflowException as exc:
        raise BadInput(f"cannot set alias '{alias}': {first_line(exc)}", field="alias") from None
    action = "set" if previous is None else "move"
    event = AuditEvent(action, alias, str(version), previous, by, _now(), reason)
    _record(client, name, event)
    return event


def remove_alias(client: MlflowClient, name: str, alias: str, *, by: str, reason: str) -> AuditEvent:
    """Delete `alias`; the event is recorded on the version that held it."""
    previous = aliases(client, name).get(alias)
    if previous is None:
        raise NotFound(f"model '{name}' has no alias '{alias}'", field="alias")
    client.delete_registered_model_alias(name, alias)
    event = AuditEvent("remove", alias, previous, previous, by, _now(), reason)
    _record(client, name, event)
    return event


def alias_history(client: MlflowClient, name: str) -> list[AuditEvent]:
    """Every recorded alias change of a model, oldest first."""
    events = []
    for version in list_versions(client, name):
        for key, value in (version.tags or {}).items():
            if not key.startswith(AUDIT_PREFIX):
                continue
            try:
                events.append(AuditEvent(**json.loads(value)))
            except (TypeError, ValueError):
                continue
    return sorted(events, key=lambda e: e.at)
