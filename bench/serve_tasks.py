"""Demo models of the other tasks for `bench/serve_speed.py --task regression|multiclass`.

Each is a random forest of 100 trees behind mlscope's per-feature layout (median imputer and scaler per
raw feature), fitted on a dataset inside scikit-learn's wheel (no download) and logged the stock MLflow
way (sklearn flavor, cloudpickle, with a signature) as a registered model: regression on `load_diabetes`
(10 numbers), multiclass on `load_wine` (13 numbers, 3 cultivars). The requests cycle through the
dataset's rows and jittered copies of them (1,000 in all)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SEED, JITTER = 42, 0.05


@dataclass(frozen=True)
class Demo:
    task: str
    model_name: str
    load: Callable[[], tuple[pd.DataFrame, pd.Series]]
    estimator: Callable[[], Any]


def _diabetes() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_diabetes

    return load_diabetes(return_X_y=True, as_frame=True)


def _wine() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True, as_frame=True)
    return X, pd.Series(np.array(["barolo", "grignolino", "barbera"], dtype=object)[y.to_numpy()], name="cultivar")


def _forest_regressor() -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=100, random_state=0)


def _forest_classifier() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, random_state=0)


DEMOS = {"regression": Demo("regression", "diabetes-progression", _diabetes, _forest_regressor),
         "multiclass": Demo("multiclass", "wine-cultivar", _wine, _forest_classifier)}


def pipeline(columns: list[str], estimator: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [(c, Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), [c])
             for c in columns]
    return Pipeline([("preprocess", ColumnTransformer(steps)), ("model", estimator)])


def register(uri: str, demo: Demo, alias: str, artifacts: Path) -> str:
    """Fit and register the demo model (once per store) with `alias` on it; its version."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions(f"name='{demo.model_name}'")
    if not versions:
        X, y = demo.load()
        model = pipeline(list(X.columns), demo.estimator()).fit(X, y)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        experiment = client.get_experiment_by_name("serve-bench") or client.get_experiment(client.create_experiment(
            "serve-bench", artifact_location=(artifacts / "serve-bench").as_uri()))
        with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=f"{demo.task}-forest"):
            mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, model.predict(X)),
                                     serialization_format="cloudpickle", registered_model_name=demo.model_name,
                                     pip_requirements=["scikit-learn"])
        versions = client.search_model_versions(f"name='{demo.model_name}'")
    version = str(max(int(v.version) for v in versions))
    client.set_registered_model_alias(demo.model_name, alias, version)
    return version


def records(demo: Demo, size: int) -> list[dict[str, Any]]:
    """The dataset's rows, then copies of random rows with every number jittered by ~5%, up to `size`."""
    X, _ = demo.load()
    rng = np.random.default_rng(SEED)
    extra = X.iloc[rng.integers(0, len(X), max(size - len(X), 0))].to_numpy()
    extra = np.round(extra * (1 + JITTER * rng.standard_normal(extra.shape)), 6)
    frame = pd.concat([X, pd.DataFrame(extra, columns=X.columns)], ignore_index=True).head(size)
    return [{k: float(v) for k, v in row.items()} for row in frame.to_dict("records")]


def reference(uri: str, demo: Demo, alias: str, rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray | None]:
    """The registered model's outputs on `rows`: (predictions, None) for a regressor, (class probabilities,
    labels as text) for a classifier."""
    import mlflow
    import mlflow.sklearn

    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.sklearn.load_model(f"models:/{demo.model_name}@{alias}")
    frame = pd.DataFrame(rows).astype("float64")
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(frame)), np.array([str(label) for label in model.predict(frame)])
    return np.asarray(model.predict(frame), dtype=float), None
