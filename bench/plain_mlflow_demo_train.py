"""The diabetes (regression) and wine (multiclass) demo jobs written the stock MLflow way, as a baseline
for `bench/train_speed.py --dataset diabetes|wine`.

    python bench/plain_mlflow_demo_train.py --dataset diabetes|wine

It reads the enabled experiments of the TOML file `mlscope train` uses for the dataset's task
(experiments_regression.toml / experiments_multiclass.toml, shipped in mlscope.training), builds the same
estimators with the same params, splits the same scikit-learn data with the same test_size and
random_state (stratified for wine), and, for each experiment, fits imputation + scaling + the estimator,
then logs params, the task's test metrics, one figure (predicted-vs-actual for diabetes, the confusion
matrix for wine) and the model with mlflow.sklearn (registered as the model name `mlscope train
--dataset` uses), letting MLflow infer the model's pip requirements and signature itself.

It does LESS work than `mlscope train --dataset`: no 5-fold cross-validation, no fairness slices, no
residual/ROC/importance plots or reports, no per-class precision/recall, no predictions artifact, no
dataset input, no version tags and no alias; the models are fitted one after the other. Wine is trained
on scikit-learn's integer class codes (what `load_wine` returns, and what XGBoost needs), so it needs no
label wrapper; mlscope's models answer in the class names. Timings are therefore a lower bound for the
stock way, not a like-for-like comparison.

The tracking store is taken from MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import argparse
import importlib
import time
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import mlflow.sklearn  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn import metrics as skm  # noqa: E402
from sklearn.base import BaseEstimator  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


@dataclass(frozen=True)
class Job:
    experiment: str
    model_name: str
    plan_file: str
    classification: bool


JOBS = {
    "diabetes": Job("diabetes", "diabetes-progression", "experiments_regression.toml", classification=False),
    "wine": Job("wine", "wine-cultivar", "experiments_multiclass.toml", classification=True),
}


def load(name: str) -> tuple[pd.DataFrame, pd.Series]:
    if name == "diabetes":
        bunch = datasets.load_diabetes(as_frame=True, scaled=False)
    else:
        bunch = datasets.load_wine(as_frame=True)
    return bunch.data, bunch.target


def read_plan(plan_file: str) -> dict[str, Any]:
    """The shipped TOML file `mlscope train` uses for the dataset's task."""
    return tomllib.loads((resources.files("mlscope.training") / plan_file).read_text(encoding="utf-8"))


def estimators(plan: dict[str, Any]) -> dict[str, BaseEstimator]:
    """The plan's enabled experiments: run name -> unfitted estimator."""
    built = {}
    for entry in plan["experiment"]:
        if not entry.get("enabled", True):
            continue
        module, _, name = entry["estimator"].rpartition(".")
        params = {k: (None if v == "None" else v) for k, v in entry.get("params", {}).items()}
        built[entry["name"]] = getattr(importlib.import_module(module), name)(**params)
    return built


def test_metrics(pipe: Pipeline, X_test: pd.DataFrame, y_test: pd.Series, classification: bool) -> dict[str, float]:
    if not classification:
        pred = pipe.predict(X_test)
        return {
            "rmse": float(np.sqrt(skm.mean_squared_error(y_test, pred))),
            "mae": skm.mean_absolute_error(y_test, pred),
            "r2": skm.r2_score(y_test, pred),
            "mape": skm.mean_absolute_percentage_error(y_test, pred),
            "max_error": skm.max_error(y_test, pred),
        }
    proba = pipe.predict_proba(X_test)
    pred = pipe.predict(X_test)
    return {
        "accuracy": skm.accuracy_score(y_test, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_test, pred),
        "f1_macro": skm.f1_score(y_test, pred, average="macro"),
        "f1_weighted": skm.f1_score(y_test, pred, average="weighted"),
        "log_loss": skm.log_loss(y_test, proba),
        "roc_auc": skm.roc_auc_score(y_test, proba, multi_class="ovr", average="macro"),
    }


def log_figure(pipe: Pipeline, X_test: pd.DataFrame, y_test: pd.Series, classification: bool, title: str) -> None:
    if classification:
        display = ConfusionMatrixDisplay.from_estimator(pipe, X_test, y_test)
        display.ax_.set_title(title)
        figure, name = display.figure_, "confusion_matrix.png"
    else:
        figure, ax = plt.subplots()
        ax.scatter(y_test, pipe.predict(X_test), s=10)
        ax.set(xlabel="actual", ylabel="predicted", title=title)
        name = "predicted_vs_actual.png"
    mlflow.log_figure(figure, name)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(JOBS), required=True)
    args = parser.parse_args(argv)
    job = JOBS[args.dataset]

    started = time.perf_counter()
    X, y = load(args.dataset)
    plan = read_plan(job.plan_file)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=plan["split"]["test_size"], random_state=plan["split"]["random_state"],
        stratify=y if job.classification else None,
    )
    models = estimators(plan)

    mlflow.set_experiment(job.experiment)
    for name, model in models.items():
        with mlflow.start_run(run_name=name):
            pipe = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler()),
                             ("model", model)]).fit(X_train, y_train)
            mlflow.log_params(model.get_params())
            metrics = test_metrics(pipe, X_test, y_test, job.classification)
            mlflow.log_metrics(metrics)
            log_figure(pipe, X_test, y_test, job.classification, name)
            mlflow.sklearn.log_model(
                pipe,
                name="model",
                input_example=X_train.head(5),
                registered_model_name=job.model_name,
                serialization_format="cloudpickle",
            )
            headline = "f1_macro" if job.classification else "rmse"
            print(f"{name}: {headline}={metrics[headline]:.3f}")
    print(f"plain MLflow: {len(models)} runs in {time.perf_counter() - started:.1f}s "
          "(test metrics + one figure + model only; no CV, slices, other artifacts)")


if __name__ == "__main__":
    main()
