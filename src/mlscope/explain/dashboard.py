"""What the dashboard's explain view shows: a run's stored explanation as chart data, stored rows,
live what-if records, two runs side by side, and computing an explanation for a run that has none."""

from __future__ import annotations

import copy
import functools
import logging
import math
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ConfigDict, Field

from mlscope import task
from mlscope.config import Settings
from mlscope.data.loader import load_titanic
from mlscope.errors import BadInput, NotFound
from mlscope.explain import artifacts, views
from mlscope.explain.artifacts import plain_value
from mlscope.explain.live import ExplainSessions, feature_specs
from mlscope.explain.service import EXPLAINABLE_FLAVORS, load_model, model_features
from mlscope.explain.shapley import DEFAULT_BACKGROUND, DEFAULT_SEED, Explanation, ShapleyExplainer, sample_background
from mlscope.tracking.client import allow_model_loading, bind_fluent_api, proxied_artifacts

EXPLAINED_ROWS = 200
TITANIC = "titanic"
RowId = int | float | str
_COMPUTING = threading.Lock()
_PLOTTING: set[threading.Thread] = set()
_PLOTTING_LOCK = threading.Lock()
_LOG = logging.getLogger(__name__)


class FeatureInfo(BaseModel):
    name: str
    kind: Literal["numeric", "categorical"]
    min: float | None = None
    max: float | None = None
    integer: bool = False
    categories: list[str] | None = None


OTHER = "How many features this entry sums (0: one named feature; N: the entry \"other N features\")."


class Importance(BaseModel):
    feature: str
    mean_abs_shap: float
    standard_error: float | None = Field(default=None, description=(
        "Bound on the RMS error of mean_abs_shap (mean of the feature's per-row standard errors; for the "
        "\"other\" entry, the sum of the bounds); null when the values are exact."))
    other: int = Field(default=0, description=OTHER)


class BeeswarmFeature(BaseModel):
    feature: str
    values: list[Any]
    shap: list[float]
    standard_errors: list[float] | None = Field(default=None, description="Per row; null when exact.")
    other: int = Field(default=0, description=OTHER)


class Beeswarm(BaseModel):
    features: list[BeeswarmFeature]
    row_ids: list[RowId]


class RowInfo(BaseModel):
    row_id: RowId
    name: str | None = None
    probability: float
    y_true: int | None = None


class ExplanationMeta(BaseModel):
    method: str
    exact: bool
    algorithm: str | None = None
    path: str | None = Field(default=None, description="tree, linear, enumeration or sampling (older artifacts: null)")
    why: str | None = Field(default=None, description="Why that path applies to this model.")
    converged: bool | None = Field(default=None, description="Sampling: every standard error reached the tolerance.")
    stop_reason: str | None = Field(default=None, description="Sampling: why it stopped.")
    background_size: int
    background_seed: int | None = None
    additivity_error: float = Field(description="max |base + sum(phi) - output| over the explained rows")
    max_standard_error: float | None = Field(default=None, description="Largest standard error of any value; "
                                             "null when exact or when none were recorded.")
    rows: int
    features: int
    model_output: str | None = None
    evaluator: str | None = None
    seconds: float | None = None
    data_source: str
    created: str | None = None
    run_name: str
    model_type: str | None = None


class ExplanationView(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    run_id: str
    run_name: str
    experiment: str | None
    model_type: str | None
    positive_label: str = Field(default="class 1", description="What the explained probability is of.")
    classes: list[str] = Field(default_factory=list, description="A multiclass run: the classes it has an "
                               "explanation of (pick one with `?class=`); empty otherwise.")
    output_class: str | None = Field(default=None, description="The class explained here (multiclass runs).")
    global_all_classes: list[Importance] | None = Field(default=None, description=(
        "Multiclass runs: global importance over every class, mean over rows of the sum over classes of "
        "|SHAP value| (the classes' explanations share their rows and background); null otherwise."))
    available: bool
    missing: str | None = None
    can_compute: bool = False
    compute_reason: str | None = None
    metadata: ExplanationMeta | None = None
    global_importance: list[Importance] = Field(default_factory=list, alias="global")
    beeswarm: Beeswarm | None = None
    feature_order: list[str] = Field(default_factory=list, description="Every feature, largest mean |SHAP| first.")
    features: list[FeatureInfo] = Field(default_factory=list)
    rows: list[RowInfo] = Field(default_factory=list)


class Dependence(BaseModel):
    feature: str
    values: list[Any]
    shap: list[float]
    standard_errors: list[float] | None = Field(default=None, description="Per row; null when exact.")
    colour_feature: str | None
    colour_values: list[Any]
    row_ids: list[RowId]


class Contribution(BaseModel):
    feature: str
    value: Any
    shap: float
    standard_error: float | None = Field(default=None, description="Null when exact; for the \"other\" step, the "
                                         "sum of its features' standard errors (a bound).")
    other: int = Field(default=0, description=OTHER)


class Waterfall(BaseModel):
    row_id: RowId | None
    base_value: float
    output: float
    contributions: list[Contribution]


class RowExplanation(BaseModel):
    run_id: str
    row_id: RowId
    name: str | None
    y_true: int | None
    probability: float
    record: dict[str, Any]
    waterfall: Waterfall
    output_class: str | None = Field(default=None, description=(
        "Multiclass runs: the class whose probability the waterfall explains (without `?class=`: the row's "
        "predicted class)."))
    probabilities: dict[str, float] | None = Field(default=None, description=(
        "Multiclass runs: the row's probability of each explained class (the predicted class has the largest)."))


class WhatIfView(BaseModel):
    run_id: str
    probability: float
    base_value: float
    record: dict[str, Any]
    waterfall: Waterfall
    metadata: dict[str, Any]


class ComparedRun(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    run_id: str
    run_name: str
    global_importance: list[Importance] = Field(alias="global")
    top: list[str]


class ComparisonView(BaseModel):
    features: list[str]
    a: ComparedRun
    b: ComparedRun
    spearman: float | None
    kendall: float | None
    shared_rows: int


# -- reading -------------------------------------------------------------------------------------------------

def _run(client: MlflowClient, run_id: str, field: str = "run_id") -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise NotFound(f"run '{run_id}' not found", field=field) from None
        raise


def _run_name(run: Run) -> str:
    return run.info.run_name or run.info.run_id[:8]


def _experiment_name(client: MlflowClient, run: Run) -> str | None:
    try:
        return client.get_experiment(run.info.experiment_id).name
    except MlflowException:
        return None


def _estimator_name(model: Any) -> str:
    return type(model.steps[-1][1] if hasattr(model, "steps") else model).__name__


@functools.cache
def _titanic_passengers() -> dict[int, tuple[str, int]]:
    frame = load_titanic().frame
    return {int(i): (str(n), int(s)) for i, n, s in zip(frame["PassengerId"], frame["Name"], frame["Survived"],
                                                         strict=True)}


def _passengers(run: Run, explanation: Explanation) -> dict[Any, tuple[str, int]]:
    """Names and outcomes of explained Titanic passengers, by row id (empty for other data)."""
    dataset = run.data.params.get("dataset") or explanation.metadata.get("dataset")
    if dataset != TITANIC:
        return {}
    known = _titanic_passengers()
    found = {}
    for row_id in explanation.row_ids:
        key = plain_value(row_id)
        if isinstance(key, (int, float)) and float(key).is_integer() and int(key) in known:
            found[key] = known[int(key)]
    return found


def _stored(sessions: ExplainSessions, run_id: str, output_class: str | None = None
            ) -> tuple[Explanation, pd.DataFrame] | None:
    try:
        return sessions.stored(run_id, output_class)
    except ValueError as exc:
        raise BadInput(f"the run's stored explanation cannot be read: {exc}", field="run_id") from None


def _require(sessions: ExplainSessions, run_id: str, field: str = "run_id", output_class: str | None = None
             ) -> tuple[Run, Explanation, pd.DataFrame]:
    run = _run(sessions.client, run_id, field)
    stored = _stored(sessions, run_id, output_class)
    if stored is None:
        what = f" of class '{output_class}'" if output_class is not None else ""
        raise NotFound(f"run '{run_id}' has no stored explanation{what}", field="class" if what else field)
    return run, stored[0], stored[1]


def _method(exact: bool, standard_errors: bool = False) -> str:
    if exact:
        return "exact Shapley values"
    return ("approximate Shapley values, ±SE per value" if standard_errors
            else "approximate Shapley values (sampling; no standard errors recorded)")


def _max_error(explanation: Explanation) -> float | None:
    errors = explanation.standard_errors
    return float(np.max(errors)) if errors is not None and np.size(errors) else None


def _metadata(explanation: Explanation, run_name: str, model_type: str | None) -> ExplanationMeta:
    meta = explanation.metadata
    exact = bool(meta.get("exact", True))
    rows = len(explanation.row_ids)
    return ExplanationMeta(
        method=_method(exact, explanation.standard_errors is not None), exact=exact, algorithm=meta.get("algorithm"),
        path=meta.get("path"), why=meta.get("why"), converged=meta.get("converged"), stop_reason=meta.get("stop_reason"),
        background_size=int(meta.get("background_size", 0)), background_seed=meta.get("background_seed"),
        additivity_error=float(explanation.additivity_errors.max()) if rows else 0.0,
        max_standard_error=None if exact else _max_error(explanation),
        rows=rows, features=len(explanation.features), model_output=meta.get("model_output"),
        evaluator=meta.get("evaluator"), seconds=meta.get("seconds"),
        data_source=meta.get("data_source") or f"the run's test split ({rows} rows)", created=meta.get("created"),
        run_name=run_name, model_type=model_type)


def explanation_view(sessions: ExplainSessions, run_id: str, run: Run | None = None,
                     output_class: str | None = None) -> ExplanationView:
    """Everything the explain view draws from a run's stored explanation, or why there is none. A multiclass
    run's explanations are per class: `output_class` picks one (default: the first logged)."""
    run = run or _run(sessions.client, run_id)
    header: dict[str, Any] = {"run_id": run_id, "run_name": _run_name(run),
                              "experiment": _experiment_name(sessions.client, run),
                              "model_type": run.data.params.get("model_type")}
    classes = sessions.classes(run_id) if output_class is not None or task.infer_from_run(
        run.data.tags, {}) in (task.MULTICLASS, None) else []
    if output_class is not None and output_class not in classes:
        raise BadInput(f"unknown class '{output_class}'" + (f"; the run's explained classes are "
                                                            f"{', '.join(classes)}" if classes else
                                                            ": the run has no per-class explanations"),
                       field="class")
    if classes and output_class is None and _stored(sessions, run_id) is None:
        output_class = classes[0]
    header.update(classes=classes, output_class=output_class)
    try:
        stored = sessions.stored(run_id, output_class)
    except ValueError as exc:
        return ExplanationView(**header, available=False, missing=f"the stored explanation cannot be read: {exc}",
                               compute_reason="an unreadable explanation is stored; it is not overwritten")
    if stored is None:
        plan = compute_plan(sessions.settings, run_id, run=run)
        return ExplanationView(**header, available=False, can_compute=plan.possible, compute_reason=plan.reason,
                               missing=f"no explanation is stored for this run ({artifacts.FOLDER}/"
                                       f"{artifacts.TEST_SPLIT}.json)")
    explanation, background = stored
    header["model_type"] = header["model_type"] or explanation.metadata.get("model_type")
    people = _passengers(run, explanation)
    rows = []
    for position, row_id in enumerate(explanation.row_ids):
        name, survived = people.get(plain_value(row_id), (None, None))
        rows.append(RowInfo(row_id=plain_value(row_id), name=name, y_true=survived,
                            probability=float(explanation.outputs[position])))
    all_classes = _all_classes_importance(sessions, run_id, classes) if classes else None
    return ExplanationView(
        **header, available=True, global_all_classes=all_classes,
        positive_label="survived" if people else (f"class {output_class}" if output_class else "class 1"),
        compute_reason="an explanation is already stored",
        metadata=_metadata(explanation, header["run_name"], header["model_type"]),
        global_importance=views.global_importance(explanation),
        beeswarm=views.beeswarm(explanation), feature_order=views.feature_order(explanation), rows=rows,
        features=[FeatureInfo(**asdict(spec)) for spec in feature_specs(explanation, background)])


def _all_classes_importance(sessions: ExplainSessions, run_id: str, classes: list[str]) -> list[Importance] | None:
    """Global importance summed over a multiclass run's classes: each feature's mean over rows of
    sum_k |phi_k|, with the standard-error bounds summed too (None when a class's file is missing or the
    classes were explained on different rows)."""
    stored = [_stored(sessions, run_id, label) for label in classes]
    if any(item is None for item in stored):
        return None
    explanations = [item[0] for item in stored]
    first = explanations[0]
    if any(e.features != first.features or len(e.row_ids) != len(first.row_ids) for e in explanations):
        return None
    summed = copy.copy(first)
    summed.values = sum(np.abs(e.values) for e in explanations)
    errors = [e.standard_errors for e in explanations]
    summed.standard_errors = None if any(err is None for err in errors) else sum(errors)
    return [Importance(**item) for item in views.global_importance(summed)]


def dependence_view(sessions: ExplainSessions, run_id: str, feature: str, output_class: str | None = None
                    ) -> Dependence:
    """One feature's values against its contributions, coloured by its strongest interaction."""
    _, explanation, _ = _require(sessions, run_id, output_class=output_class)
    try:
        return Dependence(**views.dependence(explanation, feature))
    except KeyError:
        raise BadInput(f"unknown feature '{feature}'; the explanation covers {', '.join(explanation.features)}",
                       field="feature") from None


def _row_position(explanation: Explanation, row_id: str) -> int:
    for position, candidate in enumerate(explanation.row_ids):
        if str(plain_value(candidate)) == row_id:
            return position
    raise NotFound(f"row '{row_id}' is not among the explained rows", field="row_id")


def _class_probabilities(sessions: ExplainSessions, run_id: str, row_id: str) -> dict[str, float] | None:
    """A multiclass run's probability of each explained class at a stored row (from the per-class
    explanations' outputs), or None when the run has no per-class probability explanations."""
    if _stored(sessions, run_id) is not None:
        return None
    probabilities = {}
    for label in sessions.classes(run_id):
        stored = _stored(sessions, run_id, label)
        if stored is None or not str(stored[0].metadata.get("model_output", "probability")).startswith("probability"):
            return None
        explanation = stored[0]
        probabilities[label] = float(explanation.outputs[_row_position(explanation, row_id)])
    return probabilities or None


def row_view(sessions: ExplainSessions, run_id: str, row_id: str, output_class: str | None = None
             ) -> RowExplanation:
    """A stored row's waterfall and its feature values (the what-if form starts from them). A multiclass
    run's row is explained for `output_class`, by default for the class the model predicts for it."""
    run = _run(sessions.client, run_id)
    probabilities = _class_probabilities(sessions, run_id, row_id)
    if probabilities is not None and output_class is None:
        output_class = max(probabilities, key=probabilities.__getitem__)
    _, explanation, _ = _require(sessions, run_id, output_class=output_class)
    position = _row_position(explanation, row_id)
    key = plain_value(explanation.row_ids[position])
    name, survived = _passengers(run, explanation).get(key, (None, None))
    record = {f: plain_value(explanation.data.iloc[position][f]) for f in explanation.features}
    return RowExplanation(run_id=run_id, row_id=key, name=name, y_true=survived,
                          probability=float(explanation.outputs[position]), record=record,
                          waterfall=Waterfall(**views.waterfall(explanation, position)),
                          output_class=output_class, probabilities=probabilities)


def what_if_view(sessions: ExplainSessions, run_id: str, record: dict[str, Any], output_class: str | None = None
                 ) -> WhatIfView:
    """Explain a hand-made record live with the run's kept explainer (nothing is logged)."""
    if sessions.loaded(run_id, output_class) is None:  # a kept session's run exists: skip the store per keystroke
        _run(sessions.client, run_id)
        if output_class is not None and output_class not in sessions.classes(run_id):
            raise BadInput(f"unknown class '{output_class}'", field="class")
    result = sessions.session(run_id, output_class).what_if(record)
    return WhatIfView(run_id=run_id, probability=result.probability, base_value=result.waterfall["base_value"],
                      record=result.record, waterfall=Waterfall(**result.waterfall),
                      metadata={"method": _method(result.metadata["exact"],
                                                  result.metadata.get("max_standard_error") is not None),
                                **result.metadata})


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def compare_view(sessions: ExplainSessions, a: str, b: str) -> ComparisonView:
    """Two runs' global importance side by side and how well their rankings agree."""
    run_a, first, _ = _require(sessions, a, "a")
    run_b, second, _ = _require(sessions, b, "b")
    try:
        result = views.compare(first, second)
    except ValueError as exc:
        raise BadInput(f"the runs cannot be compared: {exc}", field="b") from None
    importance_a = views.global_importance(first)
    shown = [item["feature"] for item in importance_a if not item["other"]]  # b's bars: the same features
    return ComparisonView(
        features=result["features"],
        a=ComparedRun(run_id=a, run_name=_run_name(run_a), global_importance=importance_a,
                      top=result["rank_champion"][:3]),
        b=ComparedRun(run_id=b, run_name=_run_name(run_b),
                      global_importance=views.global_importance(second, keep=shown),
                      top=result["rank_challenger"][:3]),
        spearman=_finite(result["spearman"]), kendall=_finite(result["kendall_tau"]),
        shared_rows=result["shared_rows"])


# -- computing -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ComputePlan:
    """Whether an explanation can be computed for a run, from which data, and why (in words)."""

    possible: bool
    reason: str
    source: Literal["titanic", "input_example"] | None = None
    features: tuple[str, ...] = ()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_NO_MODEL = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def _model_info(settings: Settings, run_id: str, local: Path | None = None) -> tuple[Any | None, str | None]:
    """(MLflow model metadata of the run's `model`, None) or (None, why there is none); read from `local`,
    the folder already downloaded, when given (only the MLmodel file is fetched otherwise)."""
    import mlflow.models

    bind_fluent_api(settings)
    try:
        if local is not None:
            return mlflow.models.Model.load(str(local)), None
        return mlflow.models.get_model_info(f"runs:/{run_id}/model"), None
    except MlflowException as exc:
        if exc.error_code in _NO_MODEL:
            return None, "the run has no logged model at 'model'"
        raise
    except OSError as exc:
        return None, f"the run's model cannot be read: {_first_line(exc)}"


def _download_model(settings: Settings, run_id: str, into: Path) -> Path | None:
    """The run's `model` folder, fetched once for everything the Compute button reads (its metadata, the
    estimator and the input example); None when the run has none (the plan then says why)."""
    import mlflow.artifacts

    bind_fluent_api(settings)
    try:
        with proxied_artifacts():
            return Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(into)))
    except MlflowException as exc:
        if exc.error_code in _NO_MODEL:
            return None
        raise
    except OSError:
        return None


_MULTICLASS_NOTE = ("a multiclass model is explained one class at a time, which the dashboard does not show "
                    "yet: use `mlscope explain {run_id} --class LABEL` (add --data file.csv for a run mlscope "
                    "did not train)")


def compute_plan(settings: Settings, run_id: str, local: Path | None = None, run: Run | None = None
                 ) -> ComputePlan:
    """How `compute_explanation` would explain the run's model, or why it cannot (`local`: the run's model
    folder, when already downloaded)."""
    if run is not None and task.infer_from_run(run.data.tags, {}) is task.MULTICLASS:
        return ComputePlan(False, _MULTICLASS_NOTE.format(run_id=run_id))
    info, problem = _model_info(settings, run_id, local)
    if info is None:
        return ComputePlan(False, f"{problem}; explanations need a model logged with mlflow.sklearn, "
                                  "mlflow.xgboost or mlflow.lightgbm")
    flavors = sorted(info.flavors or {})
    if not set(flavors) & set(EXPLAINABLE_FLAVORS):
        return ComputePlan(False, f"the run's model is not a scikit-learn, XGBoost or LightGBM model (flavors: "
                                  f"{', '.join(flavors)})")
    signature = info.signature
    if signature is not None and signature.inputs is not None and signature.inputs.has_input_names():
        features = list(signature.inputs.input_names())
    else:
        features = model_features(load_model(settings, run_id, local), [])
    if not features:
        return ComputePlan(False, "the model names neither its input columns (no signature, no feature_names_in_) "
                                  f"nor comes with data: use `mlscope explain {run_id} --data file.csv`")
    columns = set(load_titanic().frame.columns)
    if set(features) <= columns:
        return ComputePlan(True, f"the model's inputs ({', '.join(features)}) are columns of the shipped Titanic "
                                 f"data: {EXPLAINED_ROWS} passengers (fixed seed {DEFAULT_SEED}) will be explained "
                                 f"against {DEFAULT_BACKGROUND} background passengers", "titanic", tuple(features))
    if info.saved_input_example_info:
        return ComputePlan(True, "the model's logged input example will be explained (and used as the "
                                 "background)", "input_example", tuple(features))
    return ComputePlan(False, f"the model takes {', '.join(features)}, which are not all columns of the shipped "
                              "Titanic data, and no input example was logged with it: compute it with "
                              f"`mlscope explain {run_id} --data file.csv`")


def _titanic_frame(features: list[str]) -> pd.DataFrame:
    """The shipped Titanic rows (indexed by PassengerId) with numbers as float64 and missing text as NaN."""
    frame = load_titanic().frame.set_index("PassengerId")[features].copy()
    for column in features:
        if pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype("float64")
        else:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    return frame


def _scores(model: Any, frame: pd.DataFrame) -> bool:
    try:
        model.predict_proba(frame)
    except (ValueError, TypeError):
        return False
    return True


def _data_to_explain(settings: Settings, run_id: str, plan: ComputePlan, model: Any, features: list[str],
                     local: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[Any], str, dict[str, Any]]:
    """(rows, background, row ids, description, extra metadata); `local` is the run's model folder."""
    import mlflow.models

    if plan.source == TITANIC:
        frame = _titanic_frame(features)
        note = ""
        if not _scores(model, frame):  # the model cannot take missing values: it never saw any
            frame = frame.dropna()
            note = ", passengers with missing values left out (the model does not accept them)"
        rows = frame.sample(n=min(EXPLAINED_ROWS, len(frame)), random_state=DEFAULT_SEED)
        background = sample_background(frame, DEFAULT_BACKGROUND, DEFAULT_SEED)
        source = (f"a fixed-seed sample (seed {DEFAULT_SEED}) of the shipped Titanic data: {len(rows)} passengers "
                  f"explained against {len(background)} background passengers{note}")
        return rows, background, [int(i) for i in rows.index], source, {"dataset": TITANIC}
    with allow_model_loading(settings):
        example = mlflow.models.Model.load(str(local)).load_input_example(str(local))
    if not isinstance(example, pd.DataFrame) or not set(features) <= set(example.columns):
        raise BadInput(f"the model's input example is not a table of its features ({', '.join(features)}): compute "
                       f"it with `mlscope explain {run_id} --data file.csv`", field="data")
    rows = example[features].reset_index(drop=True)
    source = f"the model's logged input example ({len(rows)} rows, also the background)"
    return rows, sample_background(rows, DEFAULT_BACKGROUND, DEFAULT_SEED), list(range(len(rows))), source, {}


def _log(client: MlflowClient, run_id: str, explanation: Explanation, background: pd.DataFrame, title: str
         ) -> threading.Thread:
    """Store the explanation the way training does: `explanations/test.json` now; the two summary PNGs (for
    the stock MLflow UI; the dashboard draws its own charts from the JSON) by the returned thread, which the
    caller starts once its answer is built, so the Compute button answers without waiting for matplotlib.
    A failed plot is logged, never lost."""
    with tempfile.TemporaryDirectory(prefix="mlscope-") as tmp:
        client.log_artifact(run_id, str(artifacts.write(explanation, background, Path(tmp))),
                            artifact_path=artifacts.FOLDER)
    return threading.Thread(target=_log_plots, args=(client, run_id, explanation, title),
                            name=f"mlscope-plots-{run_id}")


def _start_plots(thread: threading.Thread) -> None:
    with _PLOTTING_LOCK:
        _PLOTTING.add(thread)
    thread.start()


def _log_plots(client: MlflowClient, run_id: str, explanation: Explanation, title: str) -> None:
    try:
        with tempfile.TemporaryDirectory(prefix="mlscope-") as tmp:
            folder = Path(tmp)
            artifacts.plot_importance(explanation, f"{title}: mean |SHAP|", folder / "shap_importance.png")
            artifacts.plot_beeswarm(explanation, f"{title}: SHAP values", folder / "shap_beeswarm.png")
            client.log_artifacts(run_id, str(folder), artifact_path=artifacts.FOLDER)
    except Exception as exc:  # noqa: BLE001 - the values are stored; the PNGs are a convenience for MLflow's UI
        _LOG.warning("run %s: the explanation's summary plots were not stored: %s", run_id, _first_line(exc))
    finally:
        with _PLOTTING_LOCK:
            _PLOTTING.discard(threading.current_thread())


def wait_for_plots(timeout: float = 60.0) -> bool:
    """Block until every pending summary plot is stored (tests, shutdown); False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        with _PLOTTING_LOCK:
            pending = list(_PLOTTING)
        if not pending:
            return True
        pending[0].join(max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            return False


def compute_explanation(sessions: ExplainSessions, run_id: str) -> ExplanationView:
    """Explain a run's model on the data its plan names and log it; a stored explanation is kept as is."""
    run = _run(sessions.client, run_id)
    plots = None
    with _COMPUTING:
        if _stored(sessions, run_id) is None:
            with tempfile.TemporaryDirectory(prefix="mlscope-model-") as tmp:
                plots = _compute(sessions, run, Path(tmp))
    view = explanation_view(sessions, run_id, run)
    if plots is not None:
        _start_plots(plots)
    return view


def _compute(sessions: ExplainSessions, run: Run, folder: Path) -> threading.Thread:
    """Explain and log the run's model (its folder downloaded once into `folder`); the plots' thread."""
    settings, run_id = sessions.settings, run.info.run_id
    local = _download_model(settings, run_id, folder)
    plan = compute_plan(settings, run_id, local)
    if not plan.possible or local is None:
        raise BadInput(plan.reason, field="data")
    model = load_model(settings, run_id, local)
    if task.infer_from_model(model) is task.MULTICLASS:
        raise BadInput(_MULTICLASS_NOTE.format(run_id=run_id), field="run_id")
    features = model_features(model, list(plan.features))
    rows, background, ids, source, extra = _data_to_explain(settings, run_id, plan, model, features, local)
    try:
        explanation = ShapleyExplainer(model, background[features], background_seed=DEFAULT_SEED,
                                       **settings.explain_limits()).explain(rows[features], ids)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"the model cannot score the data to explain: {_first_line(exc)}", field="data") from None
    explanation.metadata.update({"run_id": run_id, "model_uri": f"runs:/{run_id}/model",
                                 "model_type": _estimator_name(model), "data_source": source,
                                 "created": datetime.now(UTC).isoformat(timespec="seconds"), **extra})
    plots = _log(sessions.client, run_id, explanation, background[features], _run_name(run))
    sessions.remember(run_id, artifacts.from_json(artifacts.to_json(explanation, background[features])))
    return plots
