"""Runs logged the way MLflow users log them, not by mlscope: real `mlflow.sklearn.autolog` runs on
scikit-learn's bundled breast-cancer data."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import mlflow
from mlflow.entities import Metric

from mlscope.tracking.client import bind_fluent_api
from tests.conftest import Store, mlflow_state_kept

AUTOLOG = "autolog"
PRIVATE_METRIC = "GradientBoostingClassifier_score_X_test"
SCORED = "scored"


@dataclass(frozen=True)
class AutologRuns:
    """Run ids by name; `grid_children` are the GridSearchCV candidates autolog logged as child runs."""

    experiment_id: str
    runs: dict[str, str]
    grid_children: list[str]


def log_autolog_experiment(store: Store, name: str = AUTOLOG) -> AutologRuns:
    """Four autologged fits: LogisticRegression, RandomForest, GradientBoosting (whose `.score(X_test, y_test)`
    autolog records as a post-training metric that only this run has) and a GridSearchCV over three C
    values (autolog logs each candidate as a child run)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    estimators = {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "forest": RandomForestClassifier(n_estimators=30, max_depth=3, random_state=0),
        "boosting": GradientBoostingClassifier(n_estimators=15, max_depth=2, random_state=0),
        "grid": GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                             {"logisticregression__C": [0.01, 0.1, 1.0]}, cv=3),
    }
    experiment_id = store.experiment(name)
    runs: dict[str, str] = {}
    with mlflow_state_kept(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bind_fluent_api(store.settings())
        mlflow.sklearn.autolog(log_models=False, log_datasets=False, silent=True)
        try:
            for run_name, estimator in estimators.items():
                with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
                    estimator.fit(X_train, y_train)
                    if run_name == "boosting":
                        estimator.score(X_test, y_test)
                runs[run_name] = run.info.run_id
        finally:
            mlflow.sklearn.autolog(disable=True)
    client = store.client()
    children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{runs['grid']}'")
    return AutologRuns(experiment_id, runs, [child.info.run_id for child in children])


def log_scored_experiment(store: Store, name: str = SCORED) -> list[str]:
    """Four finished runs: roc_auc (the headline) in three, accuracy in all four; scored-1 has the best roc_auc
    (0.8), scored-2 the best accuracy but no roc_auc."""
    client = store.client()
    experiment_id = store.experiment(name)
    run_ids = []
    for number, (roc_auc, accuracy) in enumerate([(0.7, 0.9), (0.8, 0.7), (None, 0.95), (0.75, 0.8)]):
        run = client.create_run(experiment_id, run_name=f"scored-{number}", start_time=1_790_000_000_000 + number)
        values = {"accuracy": accuracy} | ({"roc_auc": roc_auc} if roc_auc is not None else {})
        client.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in values.items()])
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    return run_ids


NESTED = "nested"
# name: (parent name, roc_auc); a parent is started before its children, the fluent way.
NESTED_RUNS: dict[str, tuple[str | None, float]] = {
    "baseline": (None, 0.80),
    "sweep": (None, 0.82),
    "trial-1": ("sweep", 0.79),
    "trial-2": ("sweep", 0.91),  # the best run of the experiment: a child
    "trial-3": ("sweep", 0.85),
    "trial-3-refit": ("trial-3", 0.84),  # a grandchild
    "ensemble": (None, 0.86),
    "doomed": (None, 0.50),  # deleted afterwards: its child becomes an orphan at the top level
    "orphan": ("doomed", 0.60),
}


def log_nested_experiment(store: Store, name: str = NESTED) -> dict[str, str]:
    """Nested runs with `mlflow.start_run(nested=True)` (a sweep with children and a grandchild), two plain
    runs and an orphan whose parent was deleted. Run ids by name."""
    experiment_id = store.experiment(name)
    runs: dict[str, str] = {}
    with mlflow_state_kept():
        bind_fluent_api(store.settings())

        def log(run_name: str) -> None:
            with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, nested=True) as run:
                mlflow.log_metrics({"roc_auc": NESTED_RUNS[run_name][1],
                                    "accuracy": round(NESTED_RUNS[run_name][1] - 0.05, 2)})
                runs[run_name] = run.info.run_id
                for child, (parent, _) in NESTED_RUNS.items():
                    if parent == run_name:
                        log(child)

        for run_name, (parent, _) in NESTED_RUNS.items():
            if parent is None:
                log(run_name)
    store.client().delete_run(runs["doomed"])
    return runs
