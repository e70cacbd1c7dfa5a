"""Explainers kept in memory for the dashboard: one session per run (model, stored background and
test explanation, one `ShapleyExplainer`), so a what-if record is explained in milliseconds and
nothing is logged. A few sessions are kept, least recently used dropped first."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlscope.config import Settings
from mlscope.errors import BadInput
from mlscope.explain import views
from mlscope.explain.artifacts import FOLDER, TEST_SPLIT, plain_value
from mlscope.explain.service import coerce_rows, load_model, stored_explanation
from mlscope.task import metric_key
from mlscope.tracking.client import proxied_artifacts
from mlscope.explain.shapley import Explanation, ShapleyExplainer, output_like

SESSIONS = 4
STORED = 8
Stored = tuple[Explanation, pd.DataFrame]

LIVE_MAX_SECONDS = 3.0  # a what-if row that must be sampled stops here, with its standard errors shown


@dataclass(frozen=True)
class FeatureSpec:
    """How the what-if form offers one raw feature."""

    name: str
    kind: Literal["numeric", "categorical"]
    min: float | None = None
    max: float | None = None
    integer: bool = False
    categories: list[str] | None = None


def feature_specs(explanation: Explanation, background: pd.DataFrame) -> list[FeatureSpec]:
    """Numeric when the background column is numeric (as `coerce_rows` decides too), else categorical
    with the values seen in the background and the explained rows."""
    specs = []
    for name in explanation.features:
        seen = pd.concat([background[name], explanation.data[name]], ignore_index=True)
        if pd.api.types.is_numeric_dtype(background[name]):
            numbers = pd.to_numeric(seen, errors="coerce").dropna().to_numpy(dtype=float)
            specs.append(FeatureSpec(
                name=name, kind="numeric",
                min=float(numbers.min()) if len(numbers) else None,
                max=float(numbers.max()) if len(numbers) else None,
                integer=bool(len(numbers)) and bool(np.all(numbers == np.round(numbers)))))
        else:
            categories = sorted({str(v) for v in seen if plain_value(v) is not None})
            specs.append(FeatureSpec(name=name, kind="categorical", categories=categories))
    return specs


@dataclass(frozen=True)
class WhatIf:
    """A live explanation of one record."""

    probability: float
    waterfall: dict[str, Any]
    record: dict[str, Any]
    metadata: dict[str, Any]


def _probability_error(exc: Exception) -> BadInput:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return BadInput(f"the model cannot score this record: {text}", field="record")


@dataclass
class ExplainerSession:
    """One run's model and explainer, ready for what-if records."""

    run_id: str
    model: Any
    explanation: Explanation
    background: pd.DataFrame
    output_class: Any = None  # a multiclass model: the class whose probability is explained
    explainer: ShapleyExplainer = field(init=False)
    features: list[FeatureSpec] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        features = self.explanation.features
        self.explainer = ShapleyExplainer(self.model, self.background[features],
                                          background_seed=self.explanation.metadata.get("background_seed"),
                                          output=output_like(self.explanation.metadata),
                                          max_seconds=LIVE_MAX_SECONDS, output_class=self.output_class)
        self.features = feature_specs(self.explanation, self.background)
        if len(self.explanation.data):  # the one-row layout is built on first use: pay for it now
            self.explainer.explain(self.explanation.data.head(1))

    def _checked(self, record: dict[str, Any]) -> pd.DataFrame:
        """The record as a one-row frame typed like the background; BadInput names the bad feature."""
        names = {f.lower(): f for f in self.explanation.features}
        for key, value in record.items():
            if isinstance(value, bool) and key.lower() in names:
                name = names[key.lower()]
                raise BadInput(f"feature '{name}' must be a number, a category or null, not true/false", field=name)
        try:
            frame = coerce_rows([record], self.explanation.features, self.background)
        except BadInput as exc:
            raise BadInput(exc.message, field="record" if exc.field == "input" else exc.field) from None
        for spec in self.features:
            value = frame.at[0, spec.name]
            if plain_value(value) is None:
                continue
            if spec.kind == "numeric" and not math.isfinite(float(value)):
                raise BadInput(f"feature '{spec.name}' must be a finite number or null", field=spec.name)
            if spec.kind == "categorical" and (not isinstance(value, str) or value not in (spec.categories or [])):
                allowed = ", ".join(spec.categories or [])
                raise BadInput(f"feature '{spec.name}' must be one of {allowed} (or null)", field=spec.name)
        return frame

    def what_if(self, record: dict[str, Any]) -> WhatIf:
        """Explain `record` (raw feature values; a missing key is a missing value) against the stored
        background: P(class 1) and its contributions, which add up to it."""
        rows = self._checked(record)
        started = time.perf_counter()
        try:
            with self._lock:  # the explainer fills its caches on first use
                explanation = self.explainer.explain(rows)
        except (ValueError, TypeError) as exc:
            raise _probability_error(exc) from None
        seconds = time.perf_counter() - started
        metadata = {key: explanation.metadata[key] for key in ("exact", "algorithm", "background_size",
                                                                "evaluator", "max_additivity_error")}
        metadata["model_output"] = explanation.metadata.get("model_output")
        errors = explanation.standard_errors
        exact = explanation.metadata["exact"]
        metadata["max_standard_error"] = None if errors is None or exact else float(np.max(errors))
        metadata["seconds"] = seconds
        return WhatIf(probability=float(explanation.outputs[0]), waterfall=views.waterfall(explanation, 0),
                      record={f: plain_value(rows.at[0, f]) for f in explanation.features}, metadata=metadata)


class _Lru:
    """A small thread-safe LRU map that builds each missing value once, even under concurrent asks."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}

    def get(self, key: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            try:
                value = build()
            finally:
                with self._lock:
                    self._building.pop(key, None)
            if value is not None:
                with self._lock:
                    self._items[key] = value
                    while len(self._items) > self.size:
                        self._items.popitem(last=False)
            return value

    def peek(self, key: str) -> Any:
        with self._lock:
            return self._items.get(key)

    def drop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


def _key(run_id: str, output_class: str | None) -> str:
    return run_id if output_class is None else f"{run_id}\x00{output_class}"


def class_explanation_name(output_class: str | None) -> str:
    """The artifact name of a class's explanation (`test-class-<label>`), or the test explanation's."""
    return TEST_SPLIT if output_class is None else f"{TEST_SPLIT}-class-{metric_key(output_class)}"


def explained_classes(client: MlflowClient, run_id: str) -> list[str]:
    """The class labels (as metric keys) of the run's per-class explanations, in file order."""
    prefix = f"{FOLDER}/{TEST_SPLIT}-class-"
    with proxied_artifacts():
        names = sorted(a.path for a in client.list_artifacts(run_id, FOLDER))
    return [n.removeprefix(prefix).removesuffix(".json") for n in names if n.startswith(prefix) and n.endswith(".json")]


class ExplainSessions:
    """The dashboard's explainers (`web.services["explain"]`): stored explanations and sessions per run.
    Only explanations that exist are remembered, so one logged later is seen on the next ask."""

    def __init__(self, settings: Settings, client: MlflowClient, size: int = SESSIONS) -> None:
        self.settings, self.client = settings, client
        self._stored = _Lru(STORED)
        self._sessions = _Lru(size)

    def stored(self, run_id: str, output_class: str | None = None) -> Stored | None:
        """The run's logged test explanation and background (a multiclass run: `output_class`'s), or None.
        ValueError for an unknown format."""
        name = class_explanation_name(output_class)
        return self._stored.get(_key(run_id, output_class), lambda: stored_explanation(self.client, run_id, name))

    def classes(self, run_id: str) -> list[str]:
        """The classes a multiclass run has a logged explanation of (`test-class-<label>.json`); [] otherwise."""
        return self._stored.get(_key(run_id, "\x00classes"), lambda: explained_classes(self.client, run_id))

    def session(self, run_id: str, output_class: str | None = None) -> ExplainerSession:
        """The run's session, loading the model on first use. BadInput when there is nothing to explain."""
        return self._sessions.get(_key(run_id, output_class), lambda: self._open(run_id, output_class))

    def loaded(self, run_id: str, output_class: str | None = None) -> ExplainerSession | None:
        return self._sessions.peek(_key(run_id, output_class))

    def forget(self, run_id: str) -> None:
        self._stored.drop(run_id)
        self._sessions.drop(run_id)

    def remember(self, run_id: str, stored: Stored) -> None:
        """The run's explanation was just logged: keep it as it reads back, without downloading it."""
        self.forget(run_id)
        self._stored.get(run_id, lambda: stored)

    def _open(self, run_id: str, output_class: str | None = None) -> ExplainerSession:
        try:
            stored = self.stored(run_id, output_class)
        except ValueError as exc:
            raise BadInput(f"the run's stored explanation cannot be read: {exc}", field="run_id") from None
        if stored is None:
            raise BadInput(f"run '{run_id}' has no stored explanation to take the background from; compute one "
                           "first", field="run_id")
        explanation, background = stored
        model = load_model(self.settings, run_id)
        label = None if output_class is None else next(
            (c for c in getattr(model, "classes_", []) if metric_key(c) == output_class), output_class)
        try:
            return ExplainerSession(run_id=run_id, model=model, explanation=explanation, background=background,
                                    output_class=label)
        except (ValueError, TypeError, KeyError, MlflowException) as exc:
            raise BadInput(f"the run's model cannot be explained over its stored background: "
                           f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}",
                           field="run_id") from None
