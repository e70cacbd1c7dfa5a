"""Explanations of the served answers, per task: the probability of class 1 (binary), the prediction
(regression), the probability of the answered class (multiclass).

A multiclass answer is explained through the engine's `output_class`: one explainer per class, built on
first use, each under the engine's rules for that class's probability (exact through the tree path at any
width for forests, by enumeration up to 12 raw features, else sampled with standard errors)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd

from mlscope.explain.live import LIVE_MAX_SECONDS
from mlscope.explain.shapley import SAMPLING, Explanation, ShapleyExplainer


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
            self.summary = ("Shapley values of the answered class's probability (exact where the engine's "
                            "paths allow, else with standard errors)")
        else:
            explainer = self._explainer(None)
            self.summary = ("exact Shapley values" if explainer.path != SAMPLING
                            else "Shapley values with standard errors")

    def _explainer(self, index: int | None) -> ShapleyExplainer:
        """The explainer of class number `index`'s probability, or of the model's own output (None)."""
        if index not in self._explainers:
            label = None if index is None else self.model.classes_[index]
            self._explainers[index] = ShapleyExplainer(self.model, self.background, output_class=label,
                                                       **self.options)
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
