"""Explanation drift: how much each feature matters to the served version's answers on live rows
(mean |SHAP|, exact where the engine allows) against the same quantity on its logged test explanation.

Both sides use the explanation the run logged at training: its background sample, its seed and the
output it explained (probability or margin), so a ratio of 1 means "matters as much as at training".
A multiclass model is explained per class and |SHAP| summed over the classes (the explain view's
"all classes" importance)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, Field

from mlscope import task as tasks
from mlscope.config import Settings
from mlscope.errors import MlscopeError
from mlscope.explain import artifacts
from mlscope.explain.shapley import Explanation, ShapleyExplainer, output_like
from mlscope.explain.service import load_model, model_features, stored_explanation

MAX_LIVE_ROWS = 200


class FeatureShift(BaseModel):
    feature: str
    reference: float = Field(description="Mean |SHAP| on the run's logged test explanation.")
    live: float = Field(description="Mean |SHAP| on the sampled live rows.")
    ratio: float | None = Field(description="live / reference; null when the feature never mattered at training.")
    words: str


class ExplanationDrift(BaseModel):
    version: str
    rows: int = Field(description="Live rows explained (a fixed-seed sample of at most 200).")
    exact: bool | None = Field(description="Every live Shapley value exact (not sampled).")
    features: list[FeatureShift]
    problem: str | None = None


def words(feature: str, ratio: float | None) -> str:
    """"Fare matters 2.2× as much as at training", in plain words."""
    if ratio is None:
        return f"{feature} did not matter at training and does now"
    if math.isclose(ratio, 1.0, abs_tol=0.05):
        return f"{feature} matters as much as at training"
    return f"{feature} matters {ratio:.2g}× as much as at training"


def _stored(client: MlflowClient, run_id: str, classes: list[Any]) -> list[tuple[Any, Explanation, pd.DataFrame]]:
    """(class label or None, logged explanation, its background) per explained output."""
    if not classes:
        stored = stored_explanation(client, run_id)
        if stored is None:
            raise LookupError(f"run {run_id} logged no explanation ({artifacts.FOLDER}/{artifacts.TEST_SPLIT}.json)")
        return [(None, *stored)]
    found = []
    for label in classes:
        name = f"{artifacts.TEST_SPLIT}-class-{tasks.metric_key(label)}"
        stored = stored_explanation(client, run_id, name)
        if stored is None:
            raise LookupError(f"run {run_id} logged no explanation of class {label} ({artifacts.FOLDER}/{name}.json)")
        found.append((label, *stored))
    return found


def _typed_like(rows: pd.DataFrame, background: pd.DataFrame) -> pd.DataFrame:
    """Live rows with the background's column types (numbers float64, text object with NaN)."""
    typed = pd.DataFrame(index=rows.index)
    for feature in background.columns:
        if pd.api.types.is_numeric_dtype(background[feature]):
            typed[feature] = pd.to_numeric(rows[feature], errors="coerce").astype("float64")
        else:
            column = rows[feature].astype(object)
            typed[feature] = column.where(column.notna(), np.nan)
    return typed


def _mean_abs(explanations: list[Explanation], features: list[str]) -> np.ndarray:
    """Mean over rows of |SHAP| summed over the explained outputs, per feature."""
    total = np.zeros(len(features))
    for explanation in explanations:
        order = [explanation.features.index(f) for f in features]
        total += np.abs(np.asarray(explanation.values, dtype=float)[:, order]).mean(axis=0)
    return total


def _shift_size(shift: FeatureShift) -> float:
    """How far a feature's importance moved, either way (the largest first in the report)."""
    if shift.ratio is None:
        return math.inf if shift.live > 0 else 0.0
    return abs(math.log(max(shift.ratio, 1e-12)))


def explanation_drift(settings: Settings, client: MlflowClient, version: str, run_id: str | None,
                      live: pd.DataFrame, *, max_rows: int = MAX_LIVE_ROWS, seed: int = 0) -> ExplanationDrift:
    """Mean |SHAP| per feature on a sample of `live` (raw feature columns) vs the run's logged test
    explanation. A problem (no run, no loadable model, no logged explanation, no rows) is returned as
    `problem` with no features, never as a number."""
    def unavailable(problem: str, rows: int = 0) -> ExplanationDrift:
        return ExplanationDrift(version=version, rows=rows, exact=None, features=[], problem=problem)

    if run_id is None:
        return unavailable(f"version {version} has no source run to load its model from")
    if live.empty:
        return unavailable(f"no predictions of version {version} in this window")
    try:
        model = load_model(settings, run_id)
    except MlscopeError as exc:
        return unavailable(exc.message)
    classes = list(model.classes_) if tasks.infer_from_model(model) is tasks.MULTICLASS else []
    try:
        stored = _stored(client, run_id, classes)
    except LookupError as exc:
        return unavailable(str(exc))
    background = stored[0][2]
    features = model_features(model, list(background.columns))
    missing = [f for f in features if f not in live.columns or f not in background.columns]
    if missing:
        return unavailable(f"the live rows or the logged background lack the model's feature(s) {', '.join(missing)}")
    sample = live.sample(n=min(max_rows, len(live)), random_state=seed) if len(live) > max_rows else live
    rows = _typed_like(sample[features], background[features])
    explained = []
    for label, explanation, class_background in stored:
        explainer = ShapleyExplainer(model, class_background[features],
                                     background_seed=explanation.metadata.get("background_seed"),
                                     output=output_like(explanation.metadata), output_class=label,
                                     **settings.explain_limits())
        explained.append(explainer.explain(rows, list(range(len(rows)))))
    reference = _mean_abs([explanation for _, explanation, _ in stored], features)
    current = _mean_abs(explained, features)
    shifts = []
    for feature, before, now in zip(features, reference, current, strict=True):
        ratio = float(now / before) if before > 0 else None
        shifts.append(FeatureShift(feature=feature, reference=float(before), live=float(now), ratio=ratio,
                                   words=words(feature, ratio)))
    shifts.sort(key=_shift_size, reverse=True)
    exact = all(bool(e.metadata.get("exact")) for e in explained)
    return ExplanationDrift(version=version, rows=len(rows), exact=exact, features=shifts)
