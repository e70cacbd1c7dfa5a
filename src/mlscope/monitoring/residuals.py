"""Residual drift of a served regressor: its live residuals (the feedback's actual value minus the logged
prediction, on the labelled rows of a window) against its residuals on the run's test split, with the same
numeric statistics and status rules as every input feature (`drift.numeric_drift`: PSI on the test
residuals' deciles, Kolmogorov-Smirnov, Wasserstein). Inputs and outputs can look as at training while the
truth has moved (concept drift): only the residuals show it.

The test residuals come from the `predictions.csv` artifact mlscope training logs with every run (row id,
`y_true`, then the task's outputs; a regressor's is `prediction`, see training/artifacts.py), read once
through the MLflow client and cached under `monitor_dir/residuals/<run_id>.npy` (written under a temporary
name and renamed: a reader never sees half a file). Whether a task has residuals at all is the task's to say
(`Task.has_residuals`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlscope.errors import MlscopeError, NotFound
from mlscope.monitoring.drift import FeatureDrift, NumericSide, Thresholds, numeric_drift
from mlscope.monitoring.live_metrics import truth_and_outputs
from mlscope.tracking.registry import first_line

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from mlscope.task import Task

RESIDUAL = "residual"  # the feature name of the residual row in the report
PREDICTIONS_FILE = "predictions.csv"  # training/artifacts.py PREDICTIONS (not imported: it pulls in matplotlib)
TRUTH_COLUMN = "y_true"
PREDICTION_COLUMN = "prediction"  # a regression run's output column in predictions.csv
CACHE = "residuals"  # under settings.monitor_dir


class NoTestResiduals(NotFound):
    """The run logged no usable test predictions; the message says why."""


def _read(path: Path, run_id: str, task: Task) -> np.ndarray:
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise NoTestResiduals(f"run '{run_id}' has an unreadable {PREDICTIONS_FILE} ({str(exc).splitlines()[0]})",
                              field="run_id") from None
    missing = [c for c in (TRUTH_COLUMN, PREDICTION_COLUMN) if c not in frame.columns]
    if missing:
        raise NoTestResiduals(f"run '{run_id}' has a {PREDICTIONS_FILE} without {' and '.join(missing)} "
                              "(not a regression run's test predictions)", field="run_id")
    truth = pd.to_numeric(frame[TRUTH_COLUMN], errors="coerce").to_numpy(dtype=float)
    prediction = pd.to_numeric(frame[PREDICTION_COLUMN], errors="coerce").to_numpy(dtype=float)
    residuals = task.residuals(truth, prediction)
    residuals = residuals[np.isfinite(residuals)]
    if residuals.size == 0:
        raise NoTestResiduals(f"run '{run_id}' has a {PREDICTIONS_FILE} without a numeric row", field="run_id")
    return residuals


def test_split_residuals(client: MlflowClient, run_id: str, task: Task, cache_dir: Path) -> np.ndarray:
    """actual − prediction on the run's test split, from its logged predictions.csv (downloaded once, cached
    in `cache_dir`). NoTestResiduals says why there are none."""
    from mlflow.exceptions import MlflowException

    from mlscope.tracking.client import proxied_artifacts

    cached = Path(cache_dir) / f"{run_id}.npy"
    if cached.is_file():
        return np.load(cached)
    try:
        with proxied_artifacts():
            listed = {item.path for item in client.list_artifacts(run_id)}
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise NoTestResiduals(f"run '{run_id}' not found", field="run_id") from None
        raise
    if PREDICTIONS_FILE not in listed:
        raise NoTestResiduals(f"run '{run_id}' logged no test predictions ({PREDICTIONS_FILE} with {TRUTH_COLUMN} "
                              f"and {PREDICTION_COLUMN}, logged by mlscope training)", field="run_id")
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlscope-", dir=cache_dir) as tmp:
        with proxied_artifacts():
            path = Path(client.download_artifacts(run_id, PREDICTIONS_FILE, tmp))
        residuals = _read(path, run_id, task)
        staged = Path(tmp) / "residuals.npy"
        np.save(staged, residuals)
        os.replace(staged, cached)  # complete or absent
    return residuals


def live_residuals(task: Task, labelled: pd.DataFrame) -> np.ndarray:
    """actual − logged output on labelled rows (`actual`, `output`); rows whose actual is not a number are
    left out."""
    truth, outputs = truth_and_outputs(task, labelled, ())
    return task.residuals(truth, outputs)


def residual_drift(client: MlflowClient, task: Task | None, version: str, run_id: str | None, labelled: pd.DataFrame,
                   cache_dir: Path, thresholds: Thresholds = Thresholds()) -> tuple[FeatureDrift | None, str | None]:
    """The drift of version `version`'s live residuals (`labelled`: its predictions joined with their
    feedback) against its run's test residuals, or None and the reason (a problem line of the report) when
    it cannot be computed (no labelled rows, no test predictions logged by the run); (None, None) for a task
    without residuals."""
    from mlflow.exceptions import MlflowException

    if task is None:
        return None, f"residual drift of version {version}: its task is unknown"
    if not task.has_residuals:  # a classifier: nothing is missing, so nothing to report
        return None, None
    if labelled.empty:
        return None, (f"residual drift of version {version}: no labelled predictions in this window (feedback "
                      "with the actual value gives the residuals)")
    live = live_residuals(task, labelled)
    if live.size == 0:
        return None, f"residual drift of version {version}: no feedback in this window has a numeric actual value"
    if run_id is None:
        return None, f"residual drift of version {version}: it has no source run, so no test predictions"
    try:
        reference = test_split_residuals(client, run_id, task, cache_dir)
    except MlscopeError as exc:
        return None, f"residual drift of version {version}: {exc.message}"
    except (MlflowException, OSError) as exc:
        return None, f"residual drift of version {version}: {first_line(exc)}"
    return numeric_drift(RESIDUAL, NumericSide.of(reference), NumericSide.of(live), thresholds), None
