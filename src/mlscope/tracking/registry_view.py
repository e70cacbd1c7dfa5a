"""The registry as the dashboard shows it: registered models, their versions with source runs and
headline metrics, the alias audit trail, and alias changes checked before they reach MLflow."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Literal
from urllib.parse import quote

from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from mlscope import task as tasks
from mlscope.errors import BadInput, NotFound
from mlscope.tracking import registry
from mlscope.tracking.index import RunIndex
from mlscope.tracking.index.api import from_mlflow
from mlscope.tracking.index.models import IndexedRun
from mlscope.tracking.paging import all_pages
from mlscope.tracking.version_links import MODELS_PAGE, VERSIONS_PAGE, LinkedBy, RegistryLinks, VersionLink

ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
RESERVED_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
# The audit tag key is `mlscope.audit.<alias>.<timestamp>` and MLflow caps tag keys at 250 characters.
MAX_ALIAS_LENGTH = 64
MAX_REASON_LENGTH = 500
TABLE_METRICS = ("roc_auc", "accuracy", "f1", "log_loss")


class ModelSummary(BaseModel):
    name: str
    description: str | None
    versions: int
    latest_version: str | None
    aliases: dict[str, str]
    created: int | None
    last_updated: int | None


class ModelList(BaseModel):
    total: int
    models: list[ModelSummary]


RunState = Literal["active", "deleted", "missing", "none"]


class SourceRun(BaseModel):
    """The run a version came from (found by the rules of `version_links`, named in `linked_by`). `state` is
    "missing" when the run no longer exists (or lives in another tracking store) and "none" when nothing
    links the version to a run."""

    run_id: str | None
    run_name: str | None
    link: str | None
    status: str | None
    state: RunState
    linked_by: LinkedBy | None = None


class VersionView(BaseModel):
    version: str
    status: str
    created: int | None
    last_updated: int | None
    source: str | None
    run: SourceRun
    model_type: str | None
    metrics: dict[str, float]
    metrics_from: Literal["tags", "run", "none"]
    aliases: list[str]
    explain: str


class ModelDetail(BaseModel):
    name: str
    description: str | None
    created: int | None
    last_updated: int | None
    aliases: dict[str, str]
    table_metrics: list[str]
    versions: list[VersionView]


class AliasChange(BaseModel):
    """One alias change (the recorded AuditEvent) with its direction spelled out: from -> to."""

    action: str
    alias: str
    version: str
    previous_version: str | None
    from_version: str | None
    to_version: str | None
    by: str
    at: str
    reason: str


class AliasHistory(BaseModel):
    model: str
    events: list[AliasChange]


def require_model(client: MlflowClient, name: str) -> RegisteredModel:
    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise NotFound(f"registered model '{name}' not found", field="model") from None
        raise


def model_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """All versions of one model (every page), newest first."""
    quoted = name.replace("'", "\\'")
    versions = all_pages(lambda token: client.search_model_versions(
        f"name = '{quoted}'", max_results=VERSIONS_PAGE, page_token=token))
    return sorted(versions, key=lambda v: int(v.version), reverse=True)


def model_list(client: MlflowClient) -> ModelList:
    """Every registered model with its version count, latest version and aliases."""
    models = all_pages(lambda token: client.search_registered_models(max_results=MODELS_PAGE, page_token=token))
    versions = all_pages(lambda token: client.search_model_versions(max_results=VERSIONS_PAGE, page_token=token))
    by_model: dict[str, list[ModelVersion]] = {}
    for version in versions:
        by_model.setdefault(version.name, []).append(version)
    summaries = [_summary(model, by_model.get(model.name, [])) for model in models]
    summaries.sort(key=lambda s: s.name.lower())
    return ModelList(total=len(summaries), models=summaries)


def _summary(model: RegisteredModel, versions: Sequence[ModelVersion]) -> ModelSummary:
    latest = max(versions, key=lambda v: int(v.version), default=None)
    return ModelSummary(
        name=model.name, description=model.description or None, versions=len(versions),
        latest_version=str(latest.version) if latest else None, aliases=_aliases(model),
        created=model.creation_timestamp, last_updated=_last_updated(model, versions),
    )


def _aliases(model: RegisteredModel) -> dict[str, str]:
    return {alias: str(version) for alias, version in sorted((model.aliases or {}).items())}


def _last_updated(model: RegisteredModel, versions: Iterable[ModelVersion]) -> int | None:
    stamps = [model.last_updated_timestamp, *(v.last_updated_timestamp for v in versions)]
    known = [stamp for stamp in stamps if stamp]
    return max(known) if known else None


def model_detail(client: MlflowClient, index: RunIndex, name: str) -> ModelDetail:
    """A model with every version (newest first), its source run and headline metrics, and its aliases."""
    model = require_model(client, name)
    versions = model_versions(client, name)
    current = _aliases(model)
    links = RegistryLinks.of(client, versions, {model.name: current}).links
    runs = source_runs(client, index, [link.run_id for link in links if link.run_id])
    views = [_version_view(name, link, runs.get(link.run_id or "")) for link in links]
    return ModelDetail(name=model.name, description=model.description or None, created=model.creation_timestamp,
                       last_updated=_last_updated(model, versions), aliases=current,
                       table_metrics=table_metrics(views), versions=views)


def table_metrics(views: Sequence[VersionView]) -> list[str]:
    """The columns of the versions table: the four of TABLE_METRICS when the versions have them all (a
    binary classifier's, as ever), else the versions' task's metrics (headline first, at most five) when
    their metrics say one task."""
    have = lambda key: any(key in view.metrics for view in views)  # noqa: E731
    kinds = {tasks.infer_from_run({}, view.metrics) for view in views if view.metrics} - {None}
    if all(have(key) for key in TABLE_METRICS) or len(kinds) != 1:
        return list(TABLE_METRICS)
    kind = kinds.pop()
    return [key for key in dict.fromkeys((kind.headline, *kind.metric_names)) if have(key)][:5]


def source_runs(client: MlflowClient, index: RunIndex, run_ids: Sequence[str]) -> dict[str, IndexedRun]:
    """The runs that still exist among `run_ids` (deleted ones included): one index query when all exist,
    else one lookup per run."""
    wanted = list(dict.fromkeys(run_ids))
    if not wanted:
        return {}
    try:
        return {run.run_id: run for run in index.compare(wanted).runs}
    except NotFound:
        pass
    found: dict[str, IndexedRun] = {}
    for run_id in wanted:
        try:
            found[run_id] = from_mlflow(client.get_run(run_id))
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
    return found


def _version_view(name: str, link: VersionLink, run: IndexedRun | None) -> VersionView:
    version = link.version
    tags = version.tags or {}
    metrics = tag_metrics(tags)
    metrics_from: Literal["tags", "run", "none"] = "tags" if metrics else "none"
    if not metrics and run is not None:
        metrics = {key: run.metrics[key] for key in registry.HEADLINE_METRICS
                   if key in run.metrics and math.isfinite(run.metrics[key])}
        metrics_from = "run" if metrics else "none"
    model_type = tags.get("model_type") or (run.params.get("model_type") if run else None)
    number = str(version.version)
    return VersionView(
        version=number, status=str(version.status), created=version.creation_timestamp,
        last_updated=version.last_updated_timestamp, source=version.source,
        run=_source_run(link, run), model_type=model_type, metrics=metrics, metrics_from=metrics_from,
        aliases=list(link.aliases), explain=f"/models/{quote(name, safe='')}/versions/{number}/explain",
    )


def tag_metrics(tags: dict[str, str]) -> dict[str, float]:
    """The `metric.<name>` version tags that hold finite numbers."""
    metrics: dict[str, float] = {}
    for key, raw in tags.items():
        if not key.startswith(registry.METRIC_TAG):
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if math.isfinite(value):
            metrics[key[len(registry.METRIC_TAG):]] = value
    return metrics


def _source_run(link: VersionLink, run: IndexedRun | None) -> SourceRun:
    run_id = link.run_id
    tagged_name = (link.version.tags or {}).get("run_name")
    if run_id is None:
        return SourceRun(run_id=None, run_name=tagged_name, link=None, status=None, state="none")
    if run is None:
        return SourceRun(run_id=run_id, run_name=tagged_name, link=None, status=None, state="missing",
                         linked_by=link.linked_by)
    state: RunState = "deleted" if run.lifecycle_stage == "deleted" else "active"
    return SourceRun(run_id=run_id, run_name=run.run_name or tagged_name, link=f"/runs/{quote(run_id, safe='')}",
                     status=run.status, state=state, linked_by=link.linked_by)


def alias_history(client: MlflowClient, name: str) -> AliasHistory:
    """The model's recorded alias changes, newest first."""
    require_model(client, name)
    events = registry.alias_history(client, name)
    return AliasHistory(model=name, events=[change_of(event) for event in reversed(events)])


def change_of(event: registry.AuditEvent) -> AliasChange:
    removed = event.action == "remove"
    return AliasChange(
        action=event.action, alias=event.alias, version=event.version, previous_version=event.previous_version,
        from_version=event.previous_version, to_version=None if removed else event.version,
        by=event.by, at=event.at, reason=event.reason,
    )


def check_alias(alias: str) -> str:
    """An alias name MLflow accepts and does not reserve, or BadInput naming `alias`."""
    if not alias or not ALIAS_PATTERN.match(alias):
        raise BadInput(f"alias '{alias}' is not valid: use letters, digits, '_' and '-' only", field="alias")
    if len(alias) > MAX_ALIAS_LENGTH:
        raise BadInput(f"alias is longer than {MAX_ALIAS_LENGTH} characters", field="alias")
    if alias.lower() == "latest" or RESERVED_VERSION_ALIAS.match(alias):
        raise BadInput(f"alias '{alias}' is reserved by MLflow ('latest' and v<number> name versions)",
                       field="alias")
    return alias


def check_reason(reason: str) -> str:
    """The reason for an alias change: required, one paragraph of at most 500 characters."""
    reason = reason.strip()
    if not reason:
        raise BadInput("say why: a reason is required", field="reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise BadInput(f"reason is longer than {MAX_REASON_LENGTH} characters", field="reason")
    return reason


def point_alias(client: MlflowClient, name: str, alias: str, version: str, *, by: str, reason: str) -> AliasChange:
    """Set `alias` on `version` (or move it there) and record who and why."""
    require_model(client, name)
    alias, reason = check_alias(alias.strip()), check_reason(reason)
    version = version.strip()
    if not version.isdigit():
        raise BadInput(f"version '{version}' is not a version number", field="version")
    version = str(int(version))
    registry.get_version(client, name, version)
    if registry.aliases(client, name).get(alias) == version:
        raise BadInput(f"@{alias} is already on v{version}", field="alias")
    return change_of(registry.set_alias(client, name, alias, version, by=by, reason=reason))


def drop_alias(client: MlflowClient, name: str, alias: str, *, by: str, reason: str) -> AliasChange:
    """Remove `alias` from the model and record who and why."""
    require_model(client, name)
    reason = check_reason(reason)
    return change_of(registry.remove_alias(client, name, alias, by=by, reason=reason))
