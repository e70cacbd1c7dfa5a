"""Building MLflow clients from settings, and scoping MLflow's process-wide tracking URI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
from mlflow.tracking import MlflowClient

from mlscope.config import Settings


def make_client(settings: Settings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


@contextmanager
def use_tracking(settings: Settings) -> Iterator[None]:
    """MLflow's fluent API (start_run, log_model) reads a global URI; set it for this block only."""
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri or settings.tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


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
