"""Which run a registry version came from: one rule, used by every view that links versions to runs (the
runs view's `registered` column, `mlscope runs`, the run page, the registry views, the version explain link,
the prediction API and the best-version rule).

MLflow records the link in several places, depending on the MLflow version and on how the version was made:

1. `ModelVersion.run_id`: set by `create_model_version(run_id=...)`, and filled by MLflow 3.17 itself from the
   logged model's source run when the source is `models:/m-<id>`; empty (None, or "" when made through a
   tracking server) otherwise.
2. `ModelVersion.model_id` -> the logged model's `source_run_id` (stores that keep the model id).
3. A logged model named by the source: `models:/m-<id>`, or its storage location `.../models/m-<id>/artifacts`
   (what the MLflow 3.0-3.5 UI registered, with no run id) -> its `source_run_id`.
4. A run named by the source: `runs:/<run id>/<path>` or a run artifact URI `.../<run id>/artifacts/...`.
5. A copy of another version (`models:/<name>/<version>`): that version's run.

The first that names a run wins. A version none of them links (a model logged outside any run) is unlinked."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from mlflow.entities import ViewType
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlscope.tracking.paging import all_pages

LinkedBy = Literal["run_id", "model_id", "logged_model", "source_uri", "copied_version"]

VERSIONS_PAGE = 10_000
MODELS_PAGE = 1000  # the SQL store's largest page of registered models
EXPERIMENTS_PAGE = 1000
MODEL_IDS_PER_QUERY = 100
MAX_COPIES = 5  # a chain of versions copied from versions, followed this far
_MISSING = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")
# MLflow's ids: a logged model is "m-" + 32 hex digits, a run 32 hex digits (uuid4().hex).
_STORED_MODEL = re.compile(r"(?:^|/)models/(m-[0-9a-f]{32})(?:/|$)")
_SAFE_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")
_RUN_ARTIFACTS = re.compile(r"/([0-9a-f]{32})/artifacts(?:/|$)")


def logged_model_id(model_uri: str) -> str | None:
    """The id in a `models:/<model_id>` URI (MLflow's own reading: one path segment, no `@alias`),
    else None (`models:/name/3`, `models:/name@alias`, `runs:/...`)."""
    parsed = urllib.parse.urlparse(model_uri, allow_fragments=False)
    segments = parsed.path.lstrip("/").split("/")
    if parsed.scheme != "models" or parsed.netloc or len(segments) != 1 or not segments[0].strip() \
            or "@" in segments[0]:
        return None
    return segments[0]


def source_model_id(source: str) -> str | None:
    """The logged model a version source names: `models:/m-<id>` or a storage location `.../models/m-<id>/...`."""
    found = logged_model_id(source)
    if found is not None:
        return found
    stored = _STORED_MODEL.search(urllib.parse.urlparse(source, allow_fragments=False).path)
    return stored.group(1) if stored else None


def source_run_id(source: str) -> str | None:
    """The run a version source names: `runs:/<run id>/<path>`, or a run artifact URI `.../<run id>/artifacts/...`."""
    parsed = urllib.parse.urlparse(source, allow_fragments=False)
    if parsed.scheme == "runs":
        run_id = (parsed.netloc or parsed.path.lstrip("/").split("/")[0]).strip()
        return run_id or None
    found = _RUN_ARTIFACTS.search(parsed.path)
    return found.group(1) if found else None


def copied_from(source: str) -> tuple[str, str] | None:
    """(name, version) when the source is another registry version, `models:/<name>/<version>`."""
    parsed = urllib.parse.urlparse(source, allow_fragments=False)
    segments = parsed.path.lstrip("/").split("/")
    if parsed.scheme != "models" or parsed.netloc or len(segments) != 2 or not segments[1].isdigit():
        return None
    return urllib.parse.unquote(segments[0]), segments[1]


ModelRun = Callable[[str], str | None]
VersionOf = Callable[[str, str], ModelVersion | None]


def source_run(version: ModelVersion, model_run: ModelRun, version_of: VersionOf,
               _copies: int = 0) -> tuple[str | None, LinkedBy | None]:
    """The id of the run `version` came from and which of the module's rules found it, in their order;
    (None, None) when none does. `model_run` answers a logged model's source run, `version_of` another
    version of the registry (None when it does not exist)."""
    if version.run_id:
        return version.run_id, "run_id"
    model_id = getattr(version, "model_id", None) or None
    if model_id and (run_id := model_run(model_id)):
        return run_id, "model_id"
    source = version.source or ""
    named = source_model_id(source)
    if named and named != model_id and (run_id := model_run(named)):
        return run_id, "logged_model"
    if run_id := source_run_id(source):
        return run_id, "source_uri"
    copy = copied_from(source)
    if copy is not None and _copies < MAX_COPIES and (origin := version_of(*copy)) is not None:
        run_id, _ = source_run(origin, model_run, version_of, _copies + 1)
        if run_id:
            return run_id, "copied_version"
    return None, None


class LoggedModelRuns:
    """Logged model id -> the id of the run it was logged in (None when logged outside any run or unknown).
    `prefetch` asks for many at once (one search per 100 ids), calling the object answers one."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self._known: dict[str, str | None] = {}

    def prefetch(self, model_ids: Iterable[str]) -> None:
        wanted = sorted({m for m in model_ids if m not in self._known and _SAFE_MODEL_ID.fullmatch(m)})
        if not wanted:
            return
        experiments = [e.experiment_id for e in all_pages(lambda token: self.client.search_experiments(
            view_type=ViewType.ALL, max_results=EXPERIMENTS_PAGE, page_token=token))]
        for start in range(0, len(wanted), MODEL_IDS_PER_QUERY):
            chunk = wanted[start:start + MODEL_IDS_PER_QUERY]
            listed = ", ".join(f"'{model_id}'" for model_id in chunk)
            found = all_pages(lambda token, listed=listed: self.client.search_logged_models(
                experiments, filter_string=f"model_id IN ({listed})", page_token=token))
            for model_id in chunk:
                self._known[model_id] = None
            for model in found:
                self._known[model.model_id] = model.source_run_id or None

    def __call__(self, model_id: str) -> str | None:
        if model_id not in self._known:
            try:
                self._known[model_id] = self.client.get_logged_model(model_id).source_run_id or None
            except MlflowException as exc:
                if exc.error_code not in _MISSING:
                    raise
                self._known[model_id] = None
        return self._known[model_id]


def registry_version(client: MlflowClient) -> VersionOf:
    """Looks versions up in the registry; None for one that does not exist."""
    def version_of(name: str, version: str) -> ModelVersion | None:
        try:
            return client.get_model_version(name, version)
        except MlflowException as exc:
            if exc.error_code not in _MISSING:
                raise
            return None
    return version_of


def linked_run_id(client: MlflowClient, version: ModelVersion) -> str | None:
    """The run one version came from (the module's rules), or None."""
    return source_run(version, LoggedModelRuns(client), registry_version(client))[0]


@dataclass(frozen=True)
class VersionLink:
    """A registry version, its aliases, and the run it came from (None: unlinked) with the rule that found it."""

    version: ModelVersion
    aliases: tuple[str, ...]
    run_id: str | None
    linked_by: LinkedBy | None

    @property
    def name(self) -> str:
        return str(self.version.name)

    @property
    def number(self) -> int:
        return int(self.version.version)

    def badge(self, configured_model: str) -> str:
        """'v3 @production' for the configured model, 'other-model v2 @champion' for any other."""
        text = " ".join([f"v{self.number}", *(f"@{alias}" for alias in self.aliases)])
        return text if self.name == configured_model else f"{self.name} {text}"


class RegistryLinks:
    """Every version of a registry (or of one model) linked to its run, read once: make one per request."""

    def __init__(self, links: Sequence[VersionLink]) -> None:
        self.links = list(links)
        self._by_run: dict[str, list[VersionLink]] = {}
        for link in sorted(self.links, key=lambda link: (link.name, link.number)):
            if link.run_id:
                self._by_run.setdefault(link.run_id, []).append(link)

    @classmethod
    def read(cls, client: MlflowClient) -> RegistryLinks:
        """All registered models' versions: two registry searches (every page of each), plus one search of
        logged models when some versions can only be linked through them."""
        versions = all_pages(lambda token: client.search_model_versions(max_results=VERSIONS_PAGE, page_token=token))
        models = all_pages(lambda token: client.search_registered_models(max_results=MODELS_PAGE, page_token=token))
        aliases = {model.name: dict(model.aliases or {}) for model in models}
        return cls.of(client, versions, aliases)

    @classmethod
    def of(cls, client: MlflowClient, versions: Sequence[ModelVersion],
           aliases: Mapping[str, Mapping[str, str | int]]) -> RegistryLinks:
        """Links of these versions; `aliases` is model name -> {alias: version}, as a RegisteredModel has them."""
        held: dict[tuple[str, str], list[str]] = {}
        for name, pointers in aliases.items():
            for alias, number in pointers.items():
                held.setdefault((name, str(number)), []).append(alias)
        known = {(str(v.name), str(v.version)): v for v in versions}
        model_runs = LoggedModelRuns(client)
        model_runs.prefetch(model_id for v in versions if not v.run_id
                            for model_id in (getattr(v, "model_id", None), source_model_id(v.source or "")) if model_id)
        in_registry = registry_version(client)

        def version_of(name: str, number: str) -> ModelVersion | None:
            return known.get((name, number)) or in_registry(name, number)

        links = []
        for version in versions:
            run_id, linked_by = source_run(version, model_runs, version_of)
            links.append(VersionLink(version=version, run_id=run_id, linked_by=linked_by,
                                     aliases=tuple(sorted(held.get((str(version.name), str(version.version)), [])))))
        return cls(links)

    def of_run(self, run_id: str) -> list[VersionLink]:
        """The versions made from this run, by model name then version number."""
        return list(self._by_run.get(run_id, []))

    def labels(self, configured_model: str) -> dict[str, str]:
        """run id -> its versions' badges, the configured model's first ('v3 @production, other v1')."""
        return {run_id: ", ".join(link.badge(configured_model) for link in
                                  sorted(links, key=lambda link: link.name != configured_model))
                for run_id, links in self._by_run.items()}


def version_labels(client: MlflowClient, configured_model: str) -> dict[str, str]:
    """run id -> badge text of the versions (of every registered model) made from it; empty when the
    registry cannot be read."""
    try:
        return RegistryLinks.read(client).labels(configured_model)
    except MlflowException:
        return {}
