"""Fitting and scoring: the work that runs in the worker processes. Kept light (no matplotlib, no
MLflow) because every worker imports it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from mlscope import task as tasks
from mlscope.task import Task
from mlscope.training import workers
from mlscope.training.experiments import quiet_seed_deprecations

METRICS = tasks.BINARY.metric_names


def score(y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """The six headline metrics for positive-class probabilities."""
    y_pred = (proba >= threshold).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined precision on a degenerate fold is reported as 0
        return {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "precision": float(precision_score(y_true, y_pred, zero_division=0)),
            "recall": float(recall_score(y_true, y_pred, zero_division=0)),
            "f1": float(f1_score(y_true, y_pred, zero_division=0)),
            "roc_auc": float(roc_auc_score(y_true, proba)) if len(np.unique(y_true)) == 2 else float("nan"),
            "log_loss": float(log_loss(y_true, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1])),
        }


def positive_proba(model: Any, X: pd.DataFrame) -> np.ndarray:
    """Probability of class 1, whatever order the estimator keeps its classes in."""
    proba = model.predict_proba(X)
    classes = list(model.classes_)
    return proba[:, classes.index(1)]


@dataclass(frozen=True)
class FoldScores:
    """Per-fold cross-validation metrics; fold k uses the same rows in every run with the same seed."""

    folds: int
    seed: int
    values: dict[str, list[float]]
    stratified: bool = True

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, values in self.values.items():
            out[f"cv_{name}_mean"] = float(np.mean(values))
            out[f"cv_{name}_std"] = float(np.std(values, ddof=1))
        return out


def _fit(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series) -> Pipeline:
    with quiet_seed_deprecations():
        return clone(pipeline).fit(X, y)


def _fit_and_score(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, train_idx: np.ndarray,
                   test_idx: np.ndarray, task: Task) -> dict[str, float]:
    model = _fit(pipeline, X.iloc[train_idx], y.iloc[train_idx])
    outputs, classes = task.outputs(model, X.iloc[test_idx])
    return task.score(y.iloc[test_idx].to_numpy(), outputs, classes)


class FitJob:
    """The k+1 fits of one experiment in flight on the worker pool: the model on the whole
    training split and k cross-validation folds. Submitting every experiment's job up front lets
    the workers fit the next model while the main process logs the previous one."""

    def __init__(self, pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, folds: int, seed: int,
                 task: Task = tasks.BINARY) -> None:
        self.folds, self.seed, self.task = folds, seed, task
        kind = StratifiedKFold if task.classification else KFold
        splitter = kind(n_splits=folds, shuffle=True, random_state=seed)
        calls = [(_fit, (pipeline, X, y))]
        calls += [(_fit_and_score, (pipeline, X, y, tr, te, task)) for tr, te in splitter.split(X, y)]
        self._futures = workers.submit_all(calls)

    def result(self) -> tuple[Pipeline, FoldScores]:
        """Wait for the fits; the fitted model and the fold scores. Re-raises a fit's error."""
        fitted, *outcomes = [future.result() for future in self._futures]
        names = list(dict.fromkeys(name for fold in outcomes for name in fold))  # MAPE may be undefined in a fold
        values = {name: [fold.get(name, float("nan")) for fold in outcomes] for name in names}
        return fitted, FoldScores(folds=self.folds, seed=self.seed, values=values,
                                  stratified=self.task.classification)
