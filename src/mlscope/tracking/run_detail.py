"""One run in full (info, params, metrics, tags and note, artifacts, the logged model's signature, registry versions),
and reading one of its artifact files safely: only paths the run's own artifact listing names."""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from mlscope.config import Settings
from mlscope.errors import BadInput, NeedsTrackingServer, NotFound
from mlscope.tracking.annotations import NoteView, note_view, read_only_tags
from mlscope.tracking.client import artifact_repository, registry_uri
from mlscope.tracking.runs import get_run
from mlscope.tracking.version_links import LinkedBy, RegistryLinks

ARTIFACT_LIMIT = 2000
MODEL_NAME = "model"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
               "webp": "image/webp"}
TEXT_SUFFIXES = {"txt", "csv", "md", "log", "yaml", "yml", "py"}
TEXT_NAMES = {"MLmodel", "requirements", "requirements.txt"}
TEXT_TYPE = "text/plain; charset=utf-8"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"


class RunInfoView(BaseModel):
    run_id: str
    name: str
    experiment_id: str
    experiment_name: str | None
    status: str
    lifecycle_stage: str
    user: str | None
    start_time: int | None
    end_time: int | None
    duration_ms: int | None
    artifact_uri: str | None


class ArtifactEntry(BaseModel):
    path: str
    is_dir: bool
    file_size: int | None


class ArtifactTree(BaseModel):
    entries: list[ArtifactEntry]
    capped: bool
    limit: int
    error: str | None = None


class SchemaColumn(BaseModel):
    name: str | None
    type: str
    required: bool


class SignatureView(BaseModel):
    inputs: list[SchemaColumn]
    outputs: list[SchemaColumn]


class LoggedModelView(BaseModel):
    model_id: str | None
    name: str
    model_uri: str
    flavors: list[str]
    note: str | None = None


class RegistryVersion(BaseModel):
    name: str
    version: str
    aliases: list[str]
    status: str | None
    creation_timestamp: int | None
    linked_by: LinkedBy | None = None


class RunDetail(BaseModel):
    info: RunInfoView
    params: dict[str, str]
    metrics: dict[str, float | None]
    tags: dict[str, str]
    system_tags: dict[str, str]
    read_only_tags: list[str]
    note: NoteView | None
    artifacts: ArtifactTree
    model: LoggedModelView | None
    signature: SignatureView | None
    registry_versions: list[RegistryVersion]
    registry_error: str | None = None
    mlflow_ui_url: str | None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def run_detail(client: MlflowClient, settings: Settings, run_id: str) -> RunDetail:
    run = get_run(client, run_id)
    info = run.info
    experiment = client.get_experiment(info.experiment_id)
    tags = dict(run.data.tags)
    try:
        tree = artifact_tree(run_artifacts(settings, run))
    except NeedsTrackingServer as exc:  # the run's params, metrics and tags still show
        tree = _tree([], capped=False, limit=ARTIFACT_LIMIT, error=f"cannot list the artifacts: {exc.message}")
    model, signature = logged_model(client, settings, run, tree)
    versions, registry_error = registry_versions(client, run_id)
    ui_url = None
    if settings.mlflow_ui_url:
        ui_url = f"{settings.mlflow_ui_url.rstrip('/')}/#/experiments/{info.experiment_id}/runs/{run_id}"
    return RunDetail(
        info=RunInfoView(
            run_id=run_id, name=info.run_name or run_id[:8], experiment_id=info.experiment_id,
            experiment_name=experiment.name if experiment else None, status=info.status,
            lifecycle_stage=info.lifecycle_stage, user=info.user_id or tags.get("mlflow.user"),
            start_time=info.start_time, end_time=info.end_time,
            duration_ms=info.end_time - info.start_time if info.start_time and info.end_time else None,
            artifact_uri=info.artifact_uri),
        params=dict(sorted(run.data.params.items())),
        metrics={key: value if math.isfinite(value) else None for key, value in sorted(run.data.metrics.items())},
        tags={k: v for k, v in sorted(tags.items()) if not k.startswith("mlflow.")},
        system_tags={k: v for k, v in sorted(tags.items()) if k.startswith("mlflow.")},
        read_only_tags=read_only_tags(k for k in tags if not k.startswith("mlflow.")), note=note_view(tags),
        artifacts=tree, model=model, signature=signature, registry_versions=versions,
        registry_error=registry_error, mlflow_ui_url=ui_url)


def run_artifacts(settings: Settings, run: Run) -> ArtifactRepository:
    """The repository of the run's own artifact root. Unlike `client.list_artifacts`, it never mixes in an
    MLflow 3 logged model's files (those live elsewhere and are found through the process-wide URI).
    NeedsTrackingServer for proxied artifacts without their tracking server."""
    return artifact_repository(run.info.artifact_uri, settings.tracking_uri, registry_uri(settings))


def artifact_tree(repo: ArtifactRepository, limit: int = ARTIFACT_LIMIT) -> ArtifactTree:
    """Every artifact of the run, breadth first (so a cap keeps the top levels), listed in tree order."""
    entries: list[ArtifactEntry] = []
    folders: deque[str | None] = deque([None])
    try:
        while folders:
            for item in repo.list_artifacts(folders.popleft()):
                if len(entries) >= limit:
                    return _tree(entries, capped=True, limit=limit)
                entries.append(ArtifactEntry(path=item.path, is_dir=item.is_dir, file_size=item.file_size))
                if item.is_dir:
                    folders.append(item.path)
    except Exception as exc:  # any artifact-store failure only empties this section
        return _tree(entries, capped=False, limit=limit, error=f"cannot list the artifacts: {_first_line(exc)}")
    return _tree(entries, capped=False, limit=limit)


def _tree(entries: list[ArtifactEntry], *, capped: bool, limit: int, error: str | None = None) -> ArtifactTree:
    ordered = sorted(entries, key=lambda entry: entry.path.split("/"))
    return ArtifactTree(entries=ordered, capped=capped, limit=limit, error=error)


def logged_model(client: MlflowClient, settings: Settings, run: Run,
                 tree: ArtifactTree) -> tuple[LoggedModelView | None, SignatureView | None]:
    """The run's model: an MLflow 3 LoggedModel from this run (preferring one named `model`), else an
    MLflow 2 style `model/` folder among the run's artifacts; with its signature when it has one."""
    run_id = run.info.run_id
    try:
        found = client.search_logged_models([run.info.experiment_id],
                                            filter_string=f"source_run_id = '{run_id}'")
    except MlflowException:
        found = []
    if found:
        chosen = sorted(found, key=lambda m: (m.name != MODEL_NAME, -(m.creation_timestamp or 0)))[0]
        view = LoggedModelView(model_id=chosen.model_id, name=chosen.name, model_uri=chosen.model_uri, flavors=[])
        location = chosen.artifact_location
    elif any(e.path == f"{MODEL_NAME}/MLmodel" for e in tree.entries):
        view = LoggedModelView(model_id=None, name=MODEL_NAME, model_uri=f"runs:/{run_id}/{MODEL_NAME}", flavors=[])
        location = f"{run.info.artifact_uri.rstrip('/')}/{MODEL_NAME}"
    else:
        return None, None
    try:
        mlmodel = _read_mlmodel(location, settings)
    except Exception as exc:  # the model's files may be gone or unreachable; the rest of the run still shows
        view.note = f"cannot read the model's MLmodel file: {_first_line(exc)}"
        return view, None
    view.flavors = sorted(mlmodel.flavors or {})
    if mlmodel.signature is None:
        view.note = "the model was logged without a signature"
        return view, None
    signature = mlmodel.signature
    outputs = _columns(signature.outputs) if signature.outputs is not None else []
    return view, SignatureView(inputs=_columns(signature.inputs), outputs=outputs)


def _read_mlmodel(location: str, settings: Settings) -> Model:
    repo = artifact_repository(location, settings.tracking_uri, registry_uri(settings))
    with tempfile.TemporaryDirectory(prefix="mlscope-mlmodel-") as folder:
        return Model.load(repo.download_artifacts("MLmodel", dst_path=folder))


def _columns(schema: Any) -> list[SchemaColumn]:
    columns = []
    for spec in schema.inputs:
        described = spec.to_dict()
        kind = str(described.get("type", "unknown"))
        if "tensor-spec" in described:
            tensor = described["tensor-spec"]
            kind = f"tensor {tensor.get('dtype')} {tuple(tensor.get('shape') or ())}"
        elif "items" in described:
            kind = f"{kind}<{described['items'].get('type', '?')}>"
        columns.append(SchemaColumn(name=described.get("name"), type=kind,
                                    required=bool(described.get("required", True))))
    return columns


def registry_versions(client: MlflowClient, run_id: str) -> tuple[list[RegistryVersion], str | None]:
    """Registry versions (of any registered model) made from this run, linked as everywhere else
    (`version_links`), with their aliases."""
    try:
        links = RegistryLinks.read(client).of_run(run_id)
    except MlflowException as exc:
        return [], f"cannot read the model registry: {_first_line(exc)}"
    return [RegistryVersion(name=link.name, version=str(link.number), aliases=list(link.aliases),
                            status=link.version.status, creation_timestamp=link.version.creation_timestamp,
                            linked_by=link.linked_by) for link in links], None


# ---- artifact files ----

@dataclass(frozen=True)
class ArtifactFile:
    """A downloaded artifact: `local_path` lies inside `folder`, a temporary directory the caller removes."""

    local_path: Path
    folder: Path
    name: str
    media_type: str
    inline: bool


def checked_artifact_path(artifact_path: str) -> str:
    """The path when it is a plain relative path ('a/b.txt'); BadInput for anything that could escape."""
    if not artifact_path:
        raise BadInput("artifact path is empty", field="artifact_path")
    if _CONTROL.search(artifact_path) or "\\" in artifact_path:
        raise BadInput("artifact path contains a control character or a backslash", field="artifact_path")
    if artifact_path.startswith("/") or re.match(r"^[A-Za-z]:", artifact_path):
        raise BadInput("artifact path must be relative to the run's artifact root", field="artifact_path")
    segments = artifact_path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise BadInput("artifact path has an empty, '.' or '..' segment", field="artifact_path")
    return artifact_path


def content_type(artifact_path: str) -> tuple[str, bool]:
    """(media type, shown inline?) of an artifact; anything a browser could run is a download."""
    name = PurePosixPath(artifact_path).name
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix in IMAGE_TYPES:
        return IMAGE_TYPES[suffix], True
    if suffix == "json":
        return JSON_TYPE, True
    if suffix in TEXT_SUFFIXES or name in TEXT_NAMES:
        return TEXT_TYPE, True
    return BINARY_TYPE, False


def fetch_artifact(client: MlflowClient, settings: Settings, run_id: str, artifact_path: str, *,
                   download: bool = False) -> ArtifactFile:
    """Download one file of the run's artifacts into a fresh temporary folder, after checking that the
    listing of its parent folder in the run's own artifact root names exactly this path as a file."""
    checked = checked_artifact_path(artifact_path)
    repo = run_artifacts(settings, get_run(client, run_id))
    parent = str(PurePosixPath(checked).parent)
    try:
        listed = repo.list_artifacts(None if parent == "." else parent)
    except Exception:  # a folder that is not there, or a store that cannot list it: nothing to serve
        listed = []
    if not any(item.path == checked and not item.is_dir for item in listed):
        raise NotFound(f"run '{run_id}' has no artifact file '{checked}'", field="artifact_path")
    folder = Path(tempfile.mkdtemp(prefix="mlscope-artifact-"))
    try:
        local = Path(repo.download_artifacts(checked, dst_path=str(folder))).resolve()
        if not local.is_relative_to(folder.resolve()) or not local.is_file():
            raise NotFound(f"run '{run_id}' has no artifact file '{checked}'", field="artifact_path")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    media_type, inline = content_type(checked)
    return ArtifactFile(local_path=local, folder=folder, name=PurePosixPath(checked).name,
                        media_type=media_type, inline=inline and not download)
