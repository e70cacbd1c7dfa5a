"""Wide models for the view tests: a LogisticRegression on many numeric features from scikit-learn's
`make_classification` (in a per-feature scaling Pipeline), and a sampled explanation of it with the
engine's own standard errors (forced past the linear closed form), optionally logged as an MLflow run
the way the dashboard logs one."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.datasets import make_classification
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlscope.explain import artifacts
from mlscope.explain.shapley import Explanation, ShapleyExplainer
from mlscope.tracking.client import bind_fluent_api


def wide_data(features: int, rows: int = 240, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """(X, y) with columns x000, x001, ...; a handful of features carry the signal."""
    X, y = make_classification(n_samples=rows, n_features=features, n_informative=min(8, features),
                               n_redundant=0, random_state=seed)
    return pd.DataFrame(X, columns=[f"x{i:03d}" for i in range(features)]), pd.Series(y, name="y")


def wide_model(X: pd.DataFrame, y: pd.Series) -> Pipeline:
    """mlscope's training layout (one scaler per raw feature, then the estimator), so the engine runs only
    the final estimator on its hybrid rows and even today's sampler stays quick at this width."""
    prepare = ColumnTransformer([(name, StandardScaler(), [name]) for name in X.columns])
    return Pipeline([("prepare", prepare), ("model", LogisticRegression(max_iter=2000))]).fit(X, y)


def seeded_explanation(model: Any, background: pd.DataFrame, rows: pd.DataFrame, *, seeds: int = 1,
                       tolerance: float = 0.01, row_ids: list[Any] | None = None) -> Explanation:
    """The engine's own sampled estimate with its standard errors (`closed_forms=False`: a linear model
    would otherwise be explained exactly in closed form), seeded."""
    return ShapleyExplainer(model, background, background_seed=seeds, closed_forms=False, tolerance=tolerance,
                            max_seconds=60).explain(rows, row_ids)


def log_wide_run(settings: Any, client: Any, experiment_id: str, name: str, features: int, *,
                 explained: int = 30, background_rows: int = 12, seeds: int | None = 4) -> tuple[str, Explanation]:
    """Log a LogisticRegression pipeline (with a signature) and its explanation: sampled with seed `seeds`,
    or the engine's default path (seeds=None); (run id, explanation)."""
    X, y = wide_data(features)
    model = wide_model(X, y)
    background = X.sample(n=background_rows, random_state=1)
    rows = X.head(explained)
    ids = list(range(explained))
    explanation = (ShapleyExplainer(model, background).explain(rows, ids) if seeds is None
                   else seeded_explanation(model, background, rows, seeds=seeds, row_ids=ids))
    bind_fluent_api(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
        mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle",
                                 signature=infer_signature(X, model.predict_proba(X)),
                                 pip_requirements=["scikit-learn"])
    with tempfile.TemporaryDirectory(prefix="mlscope-test-") as tmp:
        folder = Path(tmp)
        artifacts.write(explanation, background, folder)
        artifacts.plot_importance(explanation, name, folder / "shap_importance.png")
        artifacts.plot_beeswarm(explanation, name, folder / "shap_beeswarm.png")
        client.log_artifacts(run.info.run_id, str(folder), artifact_path=artifacts.FOLDER)
    return run.info.run_id, explanation
