"""Loading the model version an alias points at, with everything the API needs to answer from it."""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlscope import task as tasks
from mlscope.config import Settings
from mlscope.errors import BadInput, NotFound
from mlscope.explain.shapley import Explanation as ShapleyExplanation
from mlscope.explain.shapley import output_like
from mlscope.serving.contract import Contract, contract_for
from mlscope.serving.explaining import AnswerExplainer
from mlscope.serving.predictor import Predictor, compile_predictor
from mlscope.tracking.client import allow_model_loading, bind_fluent_api
from mlscope.tracking.registry import HEADLINE_METRICS, first_line
from mlscope.tracking.version_links import linked_run_id


@dataclass
class LoadedModel:
    """One registered model version in memory: never mutated after loading, so swapping the
    reference is atomic and every answer can name the version that produced it."""

    name: str
    version: str
    alias: str
    run_id: str | None
    metrics: dict[str, float]
    contract: Contract
    predictor: Predictor
    model: Any
    loaded_at: str
    load_seconds: float
    task: tasks.Task = tasks.BINARY
    explainer: AnswerExplainer | None = None
    explain_unavailable: str | None = None
    _explain_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @functools.cached_property
    def ref(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}

    def outputs(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """The task's output per row (see `Predictor.outputs`)."""
        return self.predictor.outputs(columns)

    def explain(self, columns: dict[str, np.ndarray], outputs: np.ndarray,
                explain_class: str | None = None) -> list[ShapleyExplanation]:
        """Explanations of what the answers from `outputs` report (multiclass: of class `explain_class`
        when given), covering every row (`row_ids`: positions)."""
        class_index = self.contract.class_index(explain_class)
        if self.explainer is None:
            raise BadInput(f"explanations are not available for this model: {self.explain_unavailable}",
                           field="explain")
        rows = pd.DataFrame({feature: columns[feature] for feature in self.explainer.features})
        for feature in self.contract.numeric:
            if feature in rows:
                rows[feature] = rows[feature].astype("float64")
        with self._explain_lock:
            return self.explainer.explain(rows, outputs, class_index)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "alias": self.alias, "run_id": self.run_id,
                "task": self.task.name, **({"classes": list(self.contract.classes)} if self.contract.classes else {}),
                "metrics": self.metrics, "loaded_at": self.loaded_at, "load_seconds": round(self.load_seconds, 3),
                "inference": self.predictor.kind,
                "explanations": self.explainer.summary if self.explainer is not None
                else f"unavailable: {self.explain_unavailable}",
                "input_schema": self.contract.request_model.model_json_schema()}


def resolve_alias(client: MlflowClient, name: str, alias: str) -> str:
    """The version number `alias` points at (NotFound when no version holds it)."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise NotFound(f"no version of model '{name}' holds the alias '{alias}'", field="alias") from None
        raise


def _input_columns(info: Any, model: Any) -> list[tuple[str, str, bool]]:
    signature = getattr(info, "signature", None)
    if signature is not None and signature.inputs is not None and signature.inputs.has_input_names():
        columns = []
        for spec in signature.inputs.inputs:
            type_name = getattr(getattr(spec, "type", None), "name", str(getattr(spec, "type", "")))
            columns.append((spec.name, str(type_name), bool(getattr(spec, "required", True))))
        return columns
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise BadInput("the model has neither an MLflow signature with column names nor feature_names_in_; "
                       "the API cannot know its inputs", field="model")
    return [(str(name), "double", True) for name in names]


def class_labels(model: Any) -> list[str]:
    """A classifier's labels as the API writes them (text), in its `classes_` order; BadInput when two
    labels read the same."""
    labels = [str(label) for label in model.classes_]
    if len(set(labels)) != len(labels):
        raise BadInput(f"the model's classes {labels} are not distinct as text", field="model")
    return labels


def _metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    if not run_id:
        return {}
    try:
        metrics = client.get_run(run_id).data.metrics
    except MlflowException:
        return {}
    headline = {k: float(v) for k, v in metrics.items() if k in HEADLINE_METRICS}
    return headline or {k: float(v) for k, v in sorted(metrics.items())[:20]}


def _explainer(client: MlflowClient, model: Any, run_id: str | None, features: list[str], task: tasks.Task
               ) -> tuple[AnswerExplainer | None, str | None]:
    """An explainer over the background sample stored with the run's logged explanation."""
    from mlscope.explain.service import stored_any_explanation

    if not run_id:
        return None, "the version has no source run"
    try:
        stored = stored_any_explanation(client, run_id)
    except (MlflowException, OSError, ValueError) as exc:
        return None, f"could not read the run's explanation: {first_line(exc)}"
    if stored is None:
        return None, (f"run {run_id} has no logged explanation to take the background sample from "
                      f"(compute one with `mlscope explain {run_id} --data FILE.csv`, with --class LABEL for a "
                      "multiclass model)")
    explanation, background = stored
    if sorted(background.columns) != sorted(features):
        return None, "the stored background's columns differ from the model's inputs"
    return AnswerExplainer(model, background[features], per_class=task is tasks.MULTICLASS,
                           background_seed=explanation.metadata.get("background_seed"),
                           output=output_like(explanation.metadata)), None


def load_version(settings: Settings, client: MlflowClient, name: str, alias: str, version: str) -> LoadedModel:
    """Load version `version` of `name` (as the holder of `alias`) and prepare its fast paths."""
    import mlflow.models
    import mlflow.sklearn

    started = time.perf_counter()
    uri = f"models:/{name}/{version}"
    bind_fluent_api(settings)
    model_version = client.get_model_version(name, version)
    with allow_model_loading(settings):
        try:
            info = mlflow.models.get_model_info(uri)
            if "sklearn" not in (info.flavors or {}):
                raise BadInput(f"version {version} of '{name}' is not a scikit-learn model; "
                               "mlscope serve serves scikit-learn models", field="model")
            model = mlflow.sklearn.load_model(uri)
        except (MlflowException, OSError) as exc:
            raise BadInput(f"cannot load version {version} of '{name}': {first_line(exc)}", field="model") from None
    task = tasks.infer_from_model(model)
    if task is None:
        raise BadInput(f"version {version} of '{name}' is neither a classifier (classes_ and predict_proba) nor a "
                       "scikit-learn regressor; mlscope serve cannot tell what to answer", field="model")
    columns = _input_columns(info, model)
    try:
        contract = contract_for(columns, task, class_labels(model) if task is tasks.MULTICLASS else ())
    except ValueError as exc:
        raise BadInput(str(exc), field="model") from None
    predictor = compile_predictor(model, contract.features, list(contract.numeric), task=task)
    run_id = linked_run_id(client, model_version)
    explainer, unavailable = _explainer(client, model, run_id, contract.features, task)
    return LoadedModel(
        name=name, version=str(version), alias=alias, run_id=run_id,
        metrics=_metrics(client, run_id), contract=contract, predictor=predictor, model=model,
        loaded_at=datetime.now(UTC).isoformat(timespec="seconds"), load_seconds=time.perf_counter() - started,
        task=task, explainer=explainer, explain_unavailable=unavailable)
