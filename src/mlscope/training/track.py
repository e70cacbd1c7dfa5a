"""Log one experiment as an MLflow run: params, metrics, folds, slices, plots, model, dataset."""

from __future__ import annotations

import json
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
from mlscope.training import evaluate, fitting, workers
from mlscope.training.experiments import ExperimentSpec, ExplainSpec
from mlscope.training.prepare import Split

# Saving the model with cloudpickle, not skops: MLflow 3 gates *every* sklearn format behind
# MLFLOW_ALLOW_PICKLE_DESERIALIZATION (skops' trusted-type list is read from the model itself, so it
# is no safety boundary), skops refuses tree ensembles unless each internal type is listed, and it
# re-loads the file to check it. cloudpickle is faster and accepts any estimator a TOML file names.
SERIALIZATION = "cloudpickle"
StepHook = Callable[[str], None]


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
    """The Shapley explanation of a run's test split, computing on the worker pool."""

    future: Any
    background: pd.DataFrame


@cache
def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@cache
def pip_requirements() -> tuple[str, ...]:
    """Explicit requirements: MLflow's inference spawns a subprocess and costs ~4 s per model."""
    import cloudpickle

    return (
        f"mlflow=={mlflow.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    )


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
        "mlscope.task": "binary_classification",
        "mlscope.target": dataset.target,
        "mlscope.id_column": dataset.id_column or "",
    }
    commit = _git_commit()
    if commit:
        tags["mlscope.git_commit"] = commit
    return tags


def _write_artifacts(spec: ExperimentSpec, split: Split, pipeline: object, proba: np.ndarray,
                     folds: fitting.FoldScores, folder: Path) -> dict[str, float]:
    """Write every artifact file into `folder`; return the fairness metrics to log."""
    y_test = split.y_test.to_numpy()
    y_pred = (proba >= 0.5).astype(int)
    labels = split.dataset.label_names
    title = f"{spec.title}"

    matrix = evaluate.plot_confusion_matrix(y_test, y_pred, labels, title, folder / "confusion_matrix.png")
    points = evaluate.roc_points(y_test, proba)
    evaluate.plot_roc(points, title, folder / "roc_curve.png")
    (folder / "roc_curve.json").write_text(json.dumps(points))

    kind, values = evaluate.importance(pipeline, split.X_test, split.y_test, split.spec.random_state)
    evaluate.plot_importance(values, kind, title, folder / "feature_importance.png")
    (folder / "feature_importance.json").write_text(json.dumps({"kind": kind, "values": values}, indent=2))

    text, as_dict = evaluate.report(y_test, y_pred, labels)
    (folder / "classification_report.txt").write_text(text)
    (folder / "classification_report.json").write_text(json.dumps({**as_dict, "confusion_matrix": matrix}, indent=2))

    id_name = split.dataset.id_column or "row"
    predictions = pd.DataFrame({
        id_name: split.test_ids.to_numpy(),
        "y_true": y_test,
        "probability": proba,
        "y_pred": y_pred,
    })
    predictions.to_csv(folder / "predictions.csv", index=False, float_format="%.17g")

    (folder / "cv_folds.json").write_text(json.dumps(
        {"folds": folds.folds, "seed": folds.seed, "stratified": True, "values": folds.values}, indent=2))

    fairness_metrics: dict[str, float] = {}
    if split.dataset.slices:
        sensitive = split.dataset.frame.loc[split.X_test.index, split.dataset.slices]
        fairness_report, fairness_metrics = evaluate.fairness(y_test, y_pred, sensitive)
        (folder / "fairness.json").write_text(json.dumps(fairness_report, indent=2))
    return fairness_metrics


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
    client.log_batch(run_id, params=[Param(k, v) for k, v in _params(spec, split, spec.build()).items()])

    step("fit + cross-validate")
    pipeline, folds = job.result()
    proba = fitting.positive_proba(pipeline, split.X_test)
    test_metrics = fitting.score(split.y_test.to_numpy(), proba)
    background = sample_background(split.X_train, explain.background_size, explain.background_seed)
    explaining = workers.submit_all([(explain_rows, (pipeline, background, explain.background_seed, split.X_test,
                                                     split.test_ids.tolist()))])[0] if explain.enabled else None

    step("evaluate")
    with tempfile.TemporaryDirectory(prefix="mlscope-") as tmp:
        folder = Path(tmp)
        fairness_metrics = _write_artifacts(spec, split, pipeline, proba, folds, folder)
        metrics = [Metric(k, v, now, 0) for k, v in {**test_metrics, **folds.summary(), **fairness_metrics}.items()]
        metrics += [Metric(f"cv_{name}", value, now, fold)
                    for name, values in folds.values.items() for fold, value in enumerate(values)]
        for start in range(0, len(metrics), 900):
            client.log_batch(run_id, metrics=metrics[start:start + 900])
        client.log_artifacts(run_id, str(folder))

    step("log model")
    example = split.X_train.head(5)
    signature = infer_signature(split.X_train, pipeline.predict_proba(example))
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
        pip_requirements=list(pip_requirements()),
        serialization_format=SERIALIZATION,
        pyfunc_predict_fn="predict_proba",
    )
    result.model_uri = info.model_uri
    result.metrics = {**test_metrics, **folds.summary()}

    if explaining is not None:
        result.pending_explanation = PendingExplanation(explaining, background)


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
    try:
        explanation = pending.future.result()
    except Exception as exc:  # noqa: BLE001 - reported on the run, training goes on
        client.set_tag(run_id, "mlscope.explain_error", f"{type(exc).__name__}: {exc}".splitlines()[0][:4000])
        return
    with tempfile.TemporaryDirectory(prefix="mlscope-") as tmp:
        folder = Path(tmp)
        explain_artifacts.write(explanation, background, folder)
        explain_artifacts.plot_importance(explanation, f"{spec.title}: mean |SHAP|", folder / "shap_importance.png")
        explain_artifacts.plot_beeswarm(explanation, f"{spec.title}: SHAP values", folder / "shap_beeswarm.png")
        try:
            client.log_artifacts(run_id, str(folder), artifact_path=explain_artifacts.FOLDER)
        except Exception as exc:  # noqa: BLE001 - the store failed after MLflow's retries: say so on the run
            message = f"logging the explanation failed: {type(exc).__name__}: {exc}".splitlines()[0][:4000]
            result.error = message
            try:
                client.set_tag(run_id, "mlscope.explain_error", message)
            except Exception:  # noqa: BLE001 - the store is still down; the report carries the message
                pass
