"""Explanations of any run's model, on demand, cached as run artifacts (computed once)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlscope import task
from mlscope.config import Settings
from mlscope.errors import BadInput, NotFound
from mlscope.explain import artifacts
from mlscope.explain.shapley import DEFAULT_BACKGROUND, DEFAULT_SEED, Explanation, ShapleyExplainer, sample_background
from mlscope.tracking.client import allow_model_loading, bind_fluent_api, make_client, proxied_artifacts


def _get_run(client: MlflowClient, run_id: str) -> Any:
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise NotFound(f"run '{run_id}' not found", field="run_id") from None
        raise


def _download_json(client: MlflowClient, run_id: str, name: str) -> dict[str, Any] | None:
    path = f"{artifacts.FOLDER}/{name}.json"
    with proxied_artifacts():
        listed = {a.path for a in client.list_artifacts(run_id, artifacts.FOLDER)}
        if path not in listed:
            return None
        with tempfile.TemporaryDirectory(prefix="mlscope-") as tmp:
            local = client.download_artifacts(run_id, path, tmp)
            return json.loads(Path(local).read_text())


def _log_json(client: MlflowClient, run_id: str, payload: dict[str, Any], name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="mlscope-") as tmp:
        path = Path(tmp) / f"{name}.json"
        path.write_text(json.dumps(payload))
        client.log_artifact(run_id, str(path), artifact_path=artifacts.FOLDER)


def stored_explanation(client: MlflowClient, run_id: str, name: str = artifacts.TEST_SPLIT
                       ) -> tuple[Explanation, pd.DataFrame] | None:
    """A logged explanation of the run, or None."""
    payload = _download_json(client, run_id, name)
    return artifacts.from_json(payload) if payload is not None else None


def stored_any_explanation(client: MlflowClient, run_id: str) -> tuple[Explanation, pd.DataFrame] | None:
    """The run's test explanation, else one of its per-class ones (`test-class-<label>`, multiclass): what a
    caller that needs only the background sample (and its seed) reads."""
    stored = stored_explanation(client, run_id)
    if stored is not None:
        return stored
    with proxied_artifacts():
        names = sorted(a.path for a in client.list_artifacts(run_id, artifacts.FOLDER))
    prefix = f"{artifacts.FOLDER}/{artifacts.TEST_SPLIT}-class-"
    per_class = [name for name in names if name.startswith(prefix) and name.endswith(".json")]
    if not per_class:
        return None
    payload = _download_json(client, run_id, per_class[0].removeprefix(f"{artifacts.FOLDER}/").removesuffix(".json"))
    return artifacts.from_json(payload) if payload is not None else None


EXPLAINABLE_FLAVORS = ("sklearn", "xgboost", "lightgbm")  # each loads a scikit-learn-API estimator


def load_model(settings: Settings, run_id: str, local: Path | None = None) -> Any:
    """The run's model as a scikit-learn-API estimator, from the store or from `local`, the run's `model`
    folder already downloaded: any `mlflow.sklearn` model (mlscope's, sklearn autolog), or an XGBoost or
    LightGBM model logged with its own flavor (their autologs), which MLflow reloads as XGBClassifier,
    LGBMRegressor, ... A raw booster (the libraries' native `train` API) is refused with the reason."""
    import importlib

    import mlflow.artifacts
    import mlflow.models

    bind_fluent_api(settings)
    with allow_model_loading(settings), tempfile.TemporaryDirectory(prefix="mlscope-model-") as scratch:
        try:
            with proxied_artifacts():
                if local is None:  # one download: the flavors are read from it, the model loaded from it
                    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=scratch))
                flavors = mlflow.models.Model.load(str(local)).flavors or {}
                flavor = next((f for f in EXPLAINABLE_FLAVORS if f in flavors), None)
                if flavor is None:
                    raise BadInput(f"run '{run_id}' has a model of flavor(s) {', '.join(sorted(flavors))}: "
                                   f"explanations need a {', '.join(EXPLAINABLE_FLAVORS)} model", field="run_id")
                model = importlib.import_module(f"mlflow.{flavor}").load_model(str(local))
        except (MlflowException, OSError, ImportError) as exc:
            message = str(getattr(exc, "message", exc)).strip().splitlines()[0]
            raise BadInput(f"run '{run_id}' has no loadable scikit-learn model at 'model': {message}",
                           field="run_id") from None
    if task.infer_from_model(model) is None:
        raise BadInput(f"run '{run_id}' has a {type(model).__module__}.{type(model).__name__}, not a scikit-learn "
                       "estimator (a raw booster from the native train API?): explanations need its scikit-learn "
                       "API (XGBClassifier, LGBMRegressor, ...)", field="run_id")
    return model


def model_features(model: Any, fallback: list[str]) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else list(fallback)


def coerce_rows(records: list[dict[str, Any]], features: list[str], like: pd.DataFrame) -> pd.DataFrame:
    """User records (any key case, missing keys allowed) as a frame typed like `like`."""
    lookup = {f.lower(): f for f in features}
    rows = []
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            raise BadInput(f"input row {number} must be a JSON object of feature values", field="input")
        unknown = [k for k in record if k.lower() not in lookup]
        if unknown:
            raise BadInput(f"unknown feature(s) {', '.join(unknown)}; the model takes {', '.join(features)}",
                           field="input")
        rows.append({lookup[k.lower()]: v for k, v in record.items()})
    frame = pd.DataFrame(rows, columns=features)
    for feature in features:
        if feature in like and pd.api.types.is_numeric_dtype(like[feature]):
            try:
                frame[feature] = pd.to_numeric(frame[feature], errors="raise").astype("float64")
            except (TypeError, ValueError):
                raise BadInput(f"feature '{feature}' must be a number or null", field=feature) from None
        else:
            frame[feature] = frame[feature].astype(object).where(frame[feature].notna(), np.nan)
    return frame


def _cache_name(rows: pd.DataFrame, background: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(rows.to_json(orient="split", double_precision=15).encode())
    digest.update(background.to_json(orient="split", double_precision=15).encode())
    return f"custom-{digest.hexdigest()[:16]}"


def explain_run(settings: Settings, run_id: str, *, records: list[dict[str, Any]] | None = None,
                data: pd.DataFrame | None = None, background_size: int = DEFAULT_BACKGROUND,
                seed: int = DEFAULT_SEED, output_class: Any = None) -> tuple[Explanation, bool]:
    """Explain a run's model: its test data (no `records`) or custom rows. Returns (explanation,
    cached?) — results are stored as run artifacts and read back instead of recomputed.

    Background and test rows come from the run's logged explanation (mlscope runs), else from
    `data` (any run: the rows to explain and a fixed-seed background sample). `output_class`: the class
    whose probability is explained — required for a multiclass model (one class at a time), optional for
    a binary one (default: the positive class)."""
    client = make_client(settings)
    _get_run(client, run_id)
    per_class = None if output_class is None else f"{artifacts.TEST_SPLIT}-class-{task.metric_key(output_class)}"
    if records is None and data is None and per_class is not None:  # logged by training, or computed before
        cached = _download_json(client, run_id, per_class)
        if cached is not None:
            return artifacts.from_json(cached)[0], True
    stored = stored_explanation(client, run_id) if output_class is None else stored_any_explanation(client, run_id)
    if records is None and stored is not None and output_class is None:
        return stored[0], True
    if stored is not None:
        background = stored[1]
    elif data is not None:
        background = sample_background(data, background_size, seed)
    else:
        raise BadInput(f"run '{run_id}' has no logged explanation; give data to explain it (--data file.csv)",
                       field="data")
    model = load_model(settings, run_id)
    classes = [str(c) for c in getattr(model, "classes_", [])]
    if output_class is None and task.infer_from_model(model) is task.MULTICLASS:
        raise BadInput(f"the model is multiclass: it is explained one class at a time; add --class (one of "
                       f"{', '.join(classes)})", field="class")
    if output_class is not None and str(output_class) not in classes:
        raise BadInput(f"unknown class '{output_class}'" + (f"; the model's classes are {', '.join(classes)}"
                                                            if classes else ": the model is not a classifier"),
                       field="class")
    features = model_features(model, list(background.columns))
    missing = [f for f in features if f not in background.columns]
    if missing:
        raise BadInput(f"data lacks the model's feature(s): {', '.join(missing)}", field="data")
    background = background[features]
    if records is None and data is None:  # the logged test rows, explained for another class
        assert stored is not None and per_class is not None
        rows, name, ids = stored[0].data[features], per_class, list(stored[0].row_ids)
    elif records is None:
        rows, name, ids = data[features], per_class or artifacts.TEST_SPLIT, list(range(len(data)))
        if _download_json(client, run_id, name) is not None:  # the logged test split is never replaced by user rows
            name = _cache_name(rows, background) + ("" if per_class is None
                                                    else per_class.removeprefix(artifacts.TEST_SPLIT))
            cached = _download_json(client, run_id, name)
            if cached is not None:
                return artifacts.from_json(cached)[0], True
    else:
        rows = coerce_rows(records, features, background)
        name, ids = _cache_name(rows, background), list(range(len(rows)))
        if output_class is not None:
            name = f"{name}-class-{task.metric_key(output_class)}"
        cached = _download_json(client, run_id, name)
        if cached is not None:
            return artifacts.from_json(cached)[0], True
    label = None if output_class is None else next(c for c in model.classes_ if str(c) == str(output_class))
    explanation = ShapleyExplainer(model, background, background_seed=seed, output_class=label,
                                   **settings.explain_limits()).explain(rows, ids)
    explanation.metadata["run_id"] = run_id
    _log_json(client, run_id, artifacts.to_json(explanation, background), name)
    return explanation, False


def compare_runs(settings: Settings, champion: str, challenger: str, *, data: pd.DataFrame | None = None
                 ) -> dict[str, Any]:
    """Rank agreement of two runs' global importance and per-row contribution differences, on the
    rows both explanations share (matched by row id)."""
    from mlscope.explain import views

    first, _ = explain_run(settings, champion, data=data)
    second, _ = explain_run(settings, challenger, data=data)
    try:
        return views.compare(first, second)
    except ValueError as exc:
        raise BadInput(str(exc), field="compare") from None
