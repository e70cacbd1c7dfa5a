"""Building MLflow clients from settings, and scoping MLflow's process-wide tracking URI."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from mlscope.config import Settings
from mlscope.errors import NeedsTrackingServer

# MLflow's error (mlflow/store/artifact/mlflow_artifacts_repo.py) when an `mlflow-artifacts:/` URI is read
# with a tracking URI that is not http(s); the translated message names only that URI's scheme.
_PROXIED_WITHOUT_SERVER = re.compile(
    r"When an mlflow-artifacts URI was supplied, the tracking URI must be a valid http or https URI"
    r"(?:, but it was currently set to (?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):)?")


# MLflow's REST client (mlflow/utils/rest_utils.py) once its retries are spent: "API request to <url> failed
# with exception <urllib3/requests error>".
_REQUEST_FAILED = re.compile(r"API request to (?P<url>https?://\S+) failed with exception (?P<cause>.*)", re.DOTALL)
_TOO_MANY = re.compile(r"too many (?P<status>\d{3}) error responses")


def tracking_failure(exc: BaseException) -> str | None:
    """One readable line for an HTTP tracking server that is down or failing (MLflow's message quotes a
    urllib3 retry error); None for any other error."""
    found = _REQUEST_FAILED.search(str(getattr(exc, "message", exc)))
    if found is None:
        return None
    parts = urlsplit(found.group("url"))
    cause = found.group("cause")
    status = _TOO_MANY.search(cause)
    if status is not None:
        why = f"it answered HTTP {status.group('status')} to every retry"
        if status.group("status") == "503":
            why += " (its database may be down)"
    elif "Connection refused" in cause or "NewConnectionError" in cause:
        why = "nothing accepts connections there"
    elif "timed out" in cause.lower() or "Timeout" in cause:
        why = "it did not answer in time"
    else:
        why = cause.strip().splitlines()[0][:300] if cause.strip() else "the request failed"
    return f"the tracking server at {parts.scheme}://{parts.netloc} is unavailable: {why}"


def make_client(settings: Settings) -> MlflowClient:
    """A client bound to the settings' stores; the registry URI is explicit so MLflow's process-wide
    default (possibly left by other code) never decides where versions go."""
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=registry_uri(settings))


def service_environment(settings: Settings) -> None:
    """MLflow's REST client retries a failing tracking server 7 times with exponential backoff (minutes)
    and waits up to 120 s per request. Interactive services should say "down" within seconds instead:
    cap both for this process unless the user configured MLflow's own variables."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.tracking_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(round(settings.tracking_timeout_seconds)))
    # the dashboard downloads small artifacts all the time: no progress bar per download in its log
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def artifact_repository(artifact_uri: str, tracking_uri: str, registry_uri: str) -> ArtifactRepository:
    """The repository behind an artifact URI, resolved against these stores; NeedsTrackingServer for
    proxied artifacts (`mlflow-artifacts:/`) without their tracking server."""
    with proxied_artifacts():
        return get_artifact_repository(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)


def run_repository(client: MlflowClient, artifact_uri: str) -> ArtifactRepository:
    """The repository of a run's own artifact root (from the run's `artifact_uri`: no extra get_run per
    file). Unlike `client.list_artifacts`, it never mixes in an MLflow 3 logged model's files, which MLflow
    finds through the process-wide tracking URI rather than this client's."""
    return artifact_repository(artifact_uri, client.tracking_uri, client._registry_uri)


def needs_tracking_server(exc: BaseException) -> NeedsTrackingServer | None:
    """MLflow's error for proxied artifacts (`mlflow-artifacts:/`) read without their tracking server, as
    one line that says what to do; None for any other error."""
    if not isinstance(exc, MlflowException):
        return None
    found = _PROXIED_WITHOUT_SERVER.search(str(exc.message))
    if found is None:
        return None
    used = f"a {found.group('scheme')} URI" if found.group("scheme") else "not an http(s) URI"
    return NeedsTrackingServer(
        "these artifacts are stored through an MLflow tracking server (mlflow-artifacts:/ URIs), which only that "
        f"server can read, but the tracking URI is {used}: set MLFLOW_TRACKING_URI to the tracking server's "
        "http:// URI")


@contextmanager
def proxied_artifacts() -> Iterator[None]:
    """Around MLflow calls that resolve artifact URIs (repositories, list/download, load_model): MLflow's
    error for proxied artifacts read without their server becomes NeedsTrackingServer."""
    try:
        yield
    except MlflowException as exc:
        translated = needs_tracking_server(exc)
        if translated is None:
            raise
        raise translated from None


def registry_uri(settings: Settings) -> str:
    return settings.registry_uri or settings.tracking_uri


def bind_fluent_api(settings: Settings) -> None:
    """Point MLflow's fluent API (start_run, log_model, load_model), which reads process-wide URIs,
    at the settings' stores. Both URIs are always set together, so neither can be left stale."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(registry_uri(settings))


@contextmanager
def allow_model_loading(settings: Settings) -> Iterator[None]:
    """MLflow 3 refuses to unpickle any sklearn model unless MLFLOW_ALLOW_PICKLE_DESERIALIZATION is
    true; models in the user's own registry are trusted when `trust_registry_models` is set."""
    key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    before = os.environ.get(key)
    if settings.trust_registry_models:
        os.environ[key] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
