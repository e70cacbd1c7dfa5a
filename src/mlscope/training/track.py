"""Log one experiment as an MLflow run: params, metrics, folds, slices, plots, model, dataset."""

from __future__ import annotations

import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow.entities import Metric, Param
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

import mlscope
from mlscope.data.loader import Dataset
from mlscope.explain import artifacts as explain_artifacts
from mlscope.explain.shapley import explain_rows, sample_background
from mlscope.monitoring import reference
from mlscope.task import MULTICLASS, TASK_TAG, Task, metric_key
from mlscope.training import artifacts, fitting, workers
from mlscope.training.experiments import ExperimentSpec, ExplainSpec
from mlscope.training.prepare import Split

# Saving the model with cloudpickle, not skops: MLflow 3 gates *every* sklearn format behind
# MLFLOW_ALLOW_PICKLE_DESERIALIZATION (skops' trusted-type list is read from the model itself, so it
# is no safety boundary), skops refuses tree ensembles unless each internal type is listed, and it
# re-loads the file to check it. cloudpickle is faster and accepts any estimator a TOML file names.
SERIALIZATION = "cloudpickle"
StepHook = Callable[[str], None]
# The Shapley engine explains one output per row (the probability of the positive class, or the prediction).
# A multiclass model has one probability per class: each is explained on its own, in its own file.
PER_CLASS_NAME = "{split}-class-{label}"


@dataclass
class RunResult:
    """What happened to one experiment."""

    spec: ExperimentSpec
    run_id: str | None = None
    status: str = "FAILED"
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    error: str | None = None
    seconds: float = 0.0
    version: str | None = None
    pending_explanation: PendingExplanation | None = None


@dataclass(frozen=True)
class PendingExplanation:
    """The Shapley explanation of a run's test split, computing on the worker pool (a multiclass model:
    one per class, named by `names`)."""

    future: Any
    background: pd.DataFrame
    names: tuple[str, ...] = (explain_artifacts.TEST_SPLIT,)
    futures: tuple[Any, ...] = ()
    reference_meta: dict[str, Any] | None = None  # reference.json, completed with mean |SHAP| once explained
    labels: tuple[str, ...] = ()  # a multiclass run's class of each name


@cache
def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@cache
def pip_requirements(estimator_module: str = "sklearn") -> tuple[str, ...]:
    """Explicit requirements: MLflow's inference spawns a subprocess and costs ~4 s per model. An
    estimator from another library (xgboost, lightgbm) adds that library's installed version."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    import cloudpickle

    base = (
        f"mlflow=={mlflow.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    )
    library = estimator_module.split(".")[0]
    if library == "sklearn":
        return base
    extra = []
    for distribution in packages_distributions().get(library, []):
        try:
            extra.append(f"{distribution}=={version(distribution)}")
        except PackageNotFoundError:
            continue
    return base + tuple(extra)


def _params(spec: ExperimentSpec, split: Split, estimator: object) -> dict[str, str]:
    hyper = {key: str(value) for key, value in estimator.get_params(deep=False).items()}
    dataset = split.dataset
    return {
        **hyper,
        "model_type": spec.model_type,
        "estimator": spec.estimator,
        "dataset": dataset.name,
        "dataset_digest": dataset.digest,
        "target": dataset.target,
        "features": ",".join(dataset.features),
        "train_rows": str(len(split.X_train)),
        "test_rows": str(len(split.X_test)),
        "test_fraction": str(split.spec.test_size),
        "split_seed": str(split.spec.random_state),
        "cv_folds": str(split.spec.cv_folds),
        "cv_seed": str(split.spec.random_state),
    }


SESSION_TAG = "mlscope.session"


def _tags(spec: ExperimentSpec, dataset: Dataset, session: str) -> dict[str, str]:
    tags = {
        "mlscope.version": mlscope.__version__,
        SESSION_TAG: session,
        "mlscope.title": spec.title,
        "mlscope.dataset": dataset.name,
        TASK_TAG: dataset.task.name,
        "mlscope.target": dataset.target,
        "mlscope.id_column": dataset.id_column or "",
    }
    commit = _git_commit()
    if commit:
        tags["mlscope.git_commit"] = commit
    return tags


def log_experiment(
    client: MlflowClient, experiment_id: str, spec: ExperimentSpec, split: Split, job: fitting.FitJob,
    explain: ExplainSpec, step: StepHook, session: str,
) -> RunResult:
    """Train and log one experiment. Never raises for a failing model: the run ends FAILED with
    the error in the `mlscope.error` tag. The run is tagged with the training `session`, so runs a
    retried request created twice can be found and ended afterwards."""
    started = time.perf_counter()
    result = RunResult(spec=spec)
    logged = False
    try:
        with mlflow.start_run(experiment_id=experiment_id, run_name=spec.name,
                              tags=_tags(spec, split.dataset, session)) as run:
            result.run_id = run.info.run_id
            try:
                _log_run_body(client, run.info.run_id, spec, split, job, explain, result, step)
                logged = True
            except Exception as exc:  # the model itself failed: record it, let the others run
                message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:4000]
                result.error = message
                client.set_tag(run.info.run_id, "mlscope.error", message)
                raise
        result.status = "FINISHED"
    except Exception as exc:  # noqa: BLE001 - reported per experiment, never a traceback
        if logged:
            # Everything is logged; only ending the run failed (the store is down). The runner ends it
            # again once the session is over (runner.end_stray_runs).
            result.status = "FINISHED"
        else:
            if result.error is None:
                result.error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
            result.status = "FAILED"
    result.seconds = time.perf_counter() - started
    return result


def _log_run_body(client: MlflowClient, run_id: str, spec: ExperimentSpec, split: Split, job: fitting.FitJob,
                  explain: ExplainSpec, result: RunResult, step: StepHook) -> None:
    now = int(time.time() * 1000)
    task: Task = split.dataset.task
    client.log_batch(run_id, params=[Param(k, v) for k, v in _params(spec, split, spec.build(task)).items()])

    step("fit + cross-validate")
    pipeline, folds = job.result()
    outputs, classes = task.outputs(pipeline, split.X_test)
    test_metrics = task.score(split.y_test.to_numpy(), outputs, classes)
    background = sample_background(split.X_train, explain.background_size, explain.background_seed)
    explaining = None
    per_class = explain.enabled and task is MULTICLASS
    if per_class:
        labels = list(pipeline.classes_)
        jobs = workers.submit_all([(explain_rows, (pipeline, background, explain.background_seed, split.X_test,
                                                   split.test_ids.tolist(), label)) for label in labels])
        names = tuple(PER_CLASS_NAME.format(split=explain_artifacts.TEST_SPLIT, label=metric_key(label))
                      for label in labels)
    elif explain.enabled:
        explaining = workers.submit_all([(explain_rows, (pipeline, background, explain.background_seed, split.X_test,
                                                         split.test_ids.tolist()))])[0]

    step("evaluate")
    with tempfile.TemporaryDirectory(prefix="mlscope-") as tmp:
        folder = Path(tmp)
        fairness_metrics = artifacts.write(task, spec, split, pipeline, outputs, classes, folds, folder)
        reference_rows, reference_meta = reference.training_reference(
            task, pipeline, split.X_train, split.dataset.numeric, split.dataset.categorical)
        reference.write(folder / reference.FOLDER, reference_rows, reference_meta)
        metrics = [Metric(k, v, now, 0) for k, v in {**test_metrics, **folds.summary(), **fairness_metrics}.items()]
        metrics += [Metric(f"cv_{name}", value, now, fold)
                    for name, values in folds.values.items() for fold, value in enumerate(values)]
        for start in range(0, len(metrics), 900):
            client.log_batch(run_id, metrics=metrics[start:start + 900])
        client.log_artifacts(run_id, str(folder))

    step("log model")
    example = split.X_train.head(5)
    signature = infer_signature(split.X_train, getattr(pipeline, task.predict_method)(example))
    dataset = split.dataset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLflow's hints about int columns / local sources
        ml_dataset = mlflow.data.from_pandas(dataset.frame, source=dataset.source, name=dataset.name,
                                             targets=dataset.target, digest=dataset.digest)
        mlflow.log_input(ml_dataset, context="training")
    info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=list(pip_requirements(type(spec.build(task)).__module__)),
        serialization_format=SERIALIZATION,
        pyfunc_predict_fn=task.predict_method,
    )
    result.model_uri = info.model_uri
    result.metrics = {**test_metrics, **folds.summary()}

    if explaining is not None:
        result.pending_explanation = PendingExplanation(explaining, background, reference_meta=reference_meta)
    elif per_class:
        result.pending_explanation = PendingExplanation(None, background, names, tuple(jobs), reference_meta,
                                                        tuple(str(label) for label in labels))


def log_explanation(client: MlflowClient, result: RunResult) -> None:
    """Wait for a run's explanation and log it under `explanations/` (values + summary plots).

    This happens after every run of the session is logged: the explanation jobs queue behind the
    fits on the worker pool, and waiting for each inside its run would serialise the session. The run
    is FINISHED by then (its model and metrics are complete); MLflow accepts artifacts on finished runs.
    A model the engine cannot explain gets the reason in `mlscope.explain_error` instead."""
    pending, spec, run_id = result.pending_explanation, result.spec, result.run_id
    if pending is None or run_id is None:
        return
    result.pending_explanation = None
    background = pending.background
    futures = pending.futures or (pending.future,)
    try:
        explanations = [future.result() for future in futures]
    except Exception as exc:  # noqa: BLE001 - reported on the run, training goes on
        client.set_tag(run_id, "mlscope.explain_error", f"{type(exc).__name__}: {exc}".splitlines()[0][:4000])
        return
    with tempfile.TemporaryDirectory(prefix="mlscope-") as tmp:
        folder = Path(tmp)
        for explanation, name in zip(explanations, pending.names, strict=True):
            explain_artifacts.write(explanation, background, folder, name)
            suffix = name.removeprefix(explain_artifacts.TEST_SPLIT)  # "" or "-class-<label>"
            what = f" ({explanation.metadata.get('model_output')})" if suffix else ""
            explain_artifacts.plot_importance(explanation, f"{spec.title}: mean |SHAP|{what}",
                                              folder / f"shap_importance{suffix}.png")
            explain_artifacts.plot_beeswarm(explanation, f"{spec.title}: SHAP values{what}",
                                            folder / f"shap_beeswarm{suffix}.png")
        try:
            client.log_artifacts(run_id, str(folder), artifact_path=explain_artifacts.FOLDER)
            if pending.reference_meta is not None:
                meta = reference.with_shap(pending.reference_meta, explanations, pending.labels)
                reference.write(folder / reference.FOLDER, None, meta)
                client.log_artifact(run_id, str(folder / reference.FOLDER / reference.META),
                                    artifact_path=reference.FOLDER)
        except Exception as exc:  # noqa: BLE001 - the store failed after MLflow's retries: say so on the run
            message = f"logging the explanation failed: {type(exc).__name__}: {exc}".splitlines()[0][:4000]
            result.error = message
            try:
                client.set_tag(run_id, "mlscope.explain_error", message)
            except Exception:  # noqa: BLE001 - the store is still down; the report carries the message
                pass
