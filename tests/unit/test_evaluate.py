from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.svm import SVC

from mlscope.data.loader import load_titanic
from mlscope.training import evaluate, fitting
from mlscope.training.features import build_pipeline, raw_features


@pytest.mark.parametrize("seed", range(5))
def test_fairness_matches_fairlearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    y_true = rng.integers(0, 2, n)
    y_pred = rng.integers(0, 2, n)
    groups = pd.DataFrame({"Sex": rng.choice(["male", "female"], n), "Pclass": rng.choice([1, 2, 3], n)})
    report, flat = evaluate.fairness(y_true, y_pred, groups)
    for column, slug in (("Sex", "sex"), ("Pclass", "pclass")):
        g = groups[column].astype(str)
        assert flat[f"{slug}_demographic_parity_difference"] == pytest.approx(
            demographic_parity_difference(y_true, y_pred, sensitive_features=g))
        assert flat[f"{slug}_equalized_odds_difference"] == pytest.approx(
            equalized_odds_difference(y_true, y_pred, sensitive_features=g))
        frame = MetricFrame(metrics={"accuracy": accuracy_score, "precision": precision_score,
                                     "recall": recall_score, "f1": f1_score},
                            y_true=y_true, y_pred=y_pred, sensitive_features=g)
        for group, row in frame.by_group.iterrows():
            for name in ("accuracy", "precision", "recall", "f1"):
                assert report[column]["groups"][str(group)][name] == pytest.approx(row[name])
            assert report[column]["groups"][str(group)]["count"] == int((g == group).sum())


def test_score_uses_the_positive_class_probability() -> None:
    y = np.array([0, 0, 1, 1])
    perfect = fitting.score(y, np.array([0.1, 0.2, 0.8, 0.9]))
    assert perfect["accuracy"] == 1.0 and perfect["roc_auc"] == 1.0 and perfect["log_loss"] < 0.25
    inverted = fitting.score(y, np.array([0.9, 0.8, 0.2, 0.1]))
    assert inverted["accuracy"] == 0.0 and inverted["roc_auc"] == 0.0


def test_shuffling_in_transformed_space_equals_shuffling_raw_columns() -> None:
    data = load_titanic()
    X = raw_features(data).head(300)
    y = data.y.head(300)
    pipeline = build_pipeline(data, SVC(probability=True, random_state=0)).fit(X, y)
    importances = evaluate.permutation_importance_raw(pipeline, X, y, seed=3, n_repeats=2)
    assert set(importances) == set(data.features)
    # Replay the same permutations on raw columns through the whole pipeline: identical AUC drops.
    rng = np.random.default_rng(3)
    from sklearn.metrics import roc_auc_score

    base = roc_auc_score(y, pipeline.predict_proba(X)[:, 1])
    for name in X.columns:
        drops = []
        for _ in range(2):
            shuffled = X.copy()
            shuffled[name] = X[name].to_numpy()[rng.permutation(len(X))]
            drops.append(base - roc_auc_score(y, pipeline.predict_proba(shuffled)[:, 1]))
        assert importances[name] == pytest.approx(np.mean(drops), abs=1e-12)
    assert importances["Sex"] > importances["Parch"]


def test_fit_job_returns_the_model_and_k_folds() -> None:
    data = load_titanic()
    X, y = raw_features(data), data.y
    from sklearn.linear_model import LogisticRegression

    job = fitting.FitJob(build_pipeline(data, LogisticRegression(max_iter=1000)), X, y, folds=3, seed=1)
    model, folds = job.result()
    assert model.predict_proba(X.head(2)).shape == (2, 2)
    assert folds.folds == 3 and all(len(v) == 3 for v in folds.values.values())
    assert set(folds.summary()) == {f"cv_{m}_{s}" for m in fitting.METRICS for s in ("mean", "std")}
