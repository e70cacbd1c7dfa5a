"""Explanations of the served answers, per task: the probability of class 1 (binary), the prediction
(regression), the probability of the answered class (multiclass).

The Shapley engine explains one output of a model: P(positive class) of a classifier, the prediction of a
regressor. A multiclass answer is explained through a view of the model whose positive class is the
answered class (`ClassView`): one explainer per class, built on first use, each exact under the engine's
rules for that view (every coalition enumerated up to 12 raw features; sampled with standard errors above,
since the engine's closed forms read the model's own estimator)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from mlscope.explain.live import LIVE_MAX_SECONDS
from mlscope.explain.shapley import MAX_EXACT_FEATURES, SAMPLING, Explanation, ShapleyExplainer

_REST = "\x00other classes"


class ClassView(BaseEstimator):
    """A fitted classifier seen as a binary one whose positive class is its class number `index`:
    `predict_proba` gives (1 - P(class), P(class)) and `classes_` ends with that class."""

    def __init__(self, estimator: Any = None, index: int = 0) -> None:
        self.estimator, self.index = estimator, index

    @property
    def classes_(self) -> np.ndarray:
        return np.array([_REST, self.estimator.classes_[self.index]], dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X: Any, y: Any = None) -> ClassView:
        raise NotImplementedError("a view of a fitted classifier is not trained")

    def predict_proba(self, X: Any) -> np.ndarray:
        probability = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)[:, self.index]
        return np.column_stack([1.0 - probability, probability])


def class_view(model: Any, index: int) -> Any:
    """`model` (a Pipeline keeps its preprocessing steps, so the engine's fast paths still apply) with
    class number `index` as its positive class."""
    if isinstance(model, Pipeline):
        *steps, (name, estimator) = model.steps
        return Pipeline([*steps, (name, ClassView(estimator, index))])
    return ClassView(model, index)


class AnswerExplainer:
    """Explains the output each answer reports, against a stored background sample."""

    def __init__(self, model: Any, background: pd.DataFrame, *, per_class: bool, background_seed: int | None,
                 output: str) -> None:
        """`per_class`: answers name a class (multiclass); its explainer is built when first asked for.
        Otherwise the model's own output is explained and its explainer is built now."""
        self.model, self.background = model, background
        self.features = list(background.columns)
        self.options: dict[str, Any] = {"background_seed": background_seed, "output": output,
                                        "max_seconds": LIVE_MAX_SECONDS}
        self._explainers: dict[int | None, ShapleyExplainer] = {}
        self._lock = threading.Lock()
        if per_class:
            self.summary = ("Shapley values of the answered class's probability (exact up to "
                            f"{MAX_EXACT_FEATURES} inputs, else with standard errors)")
        else:
            explainer = self._explainer(None)
            self.summary = ("exact Shapley values" if explainer.path != SAMPLING
                            else "Shapley values with standard errors")

    def _explainer(self, index: int | None) -> ShapleyExplainer:
        """The explainer of class number `index`'s probability, or of the model's own output (None)."""
        if index not in self._explainers:
            model = self.model if index is None else class_view(self.model, index)
            self._explainers[index] = ShapleyExplainer(model, self.background, **self.options)
        return self._explainers[index]

    def explain(self, rows: pd.DataFrame, outputs: np.ndarray, class_index: int | None = None) -> list[Explanation]:
        """Explanations covering every row; each explanation's `row_ids` are positions in `rows`.
        `outputs` as `Predictor.outputs` gives them: one column per class means a multiclass answer,
        whose most probable class is explained unless `class_index` names another."""
        with self._lock:  # the explainers fill their caches on first use
            if outputs.ndim == 1 or class_index is not None:
                return [self._explainer(class_index).explain(rows, list(range(len(rows))))]
            answered = np.argmax(outputs, axis=1)
            explained = []
            for index in np.unique(answered):
                positions = np.flatnonzero(answered == index)
                explained.append(self._explainer(int(index)).explain(rows.iloc[positions], positions.tolist()))
            return explained
