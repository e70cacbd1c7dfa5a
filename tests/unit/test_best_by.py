"""The default "best by" metric: headline when most runs have it, else the most common, well-known names
first, never one run's private metric; the user's pick wins."""

from __future__ import annotations

import pytest

from mlscope.tracking.best_by import best_by, default_metric
from mlscope.tracking.index import MetricCounts


def counts(runs: int, present: dict[str, int], finished: int | None = None,
           present_finished: dict[str, int] | None = None) -> MetricCounts:
    """All runs finished unless told otherwise."""
    return MetricCounts(runs=runs, finished=runs if finished is None else finished, present=present,
                        present_finished=dict(present) if present_finished is None else present_finished)


def test_the_headline_metric_when_most_runs_have_it() -> None:
    chosen = default_metric(counts(4, {"roc_auc": 3, "accuracy": 4}), "roc_auc")
    assert (chosen.metric, chosen.direction, chosen.source) == ("roc_auc", "max", "headline")
    assert chosen.reason == "the headline metric, in 3 of 4 finished runs"


def test_a_headline_in_half_the_runs_or_fewer_gives_way_to_the_most_common_metric() -> None:
    chosen = default_metric(counts(12, {"roc_auc": 1, "accuracy": 12, "zeta": 12}), "roc_auc")
    assert (chosen.metric, chosen.source) == ("accuracy", "most_runs")
    assert chosen.reason == "the most runs have it (12 of 12 finished runs); roc_auc is in 1 of 12"
    assert default_metric(counts(4, {"roc_auc": 2, "log_loss": 4}), "roc_auc").metric == "log_loss"


def test_one_runs_private_metric_never_wins_while_several_runs_exist() -> None:
    """The defect: autolog's post-training `GradientBoostingClassifier_score_X_test` (one run) was picked."""
    private = counts(3, {"GradientBoostingClassifier_score_X_test": 1, "training_score": 2, "aaa": 1})
    assert default_metric(private, "roc_auc").metric == "training_score"
    only_private = default_metric(counts(3, {"a_score_X": 1, "b_score_X": 1}), "roc_auc")
    assert (only_private.metric, only_private.source) == ("roc_auc", "headline")
    assert "no metric is in more than one run" in only_private.reason
    single = default_metric(counts(1, {"GradientBoostingClassifier_score_X_test": 1}), "roc_auc")
    assert single.metric == "GradientBoostingClassifier_score_X_test"  # one run: its metrics are all there is


def test_near_ties_go_to_well_known_names_evaluation_before_training_headline_kind_first() -> None:
    autolog = {name: 4 for name in ("training_accuracy_score", "training_f1_score", "training_log_loss",
                                    "training_precision_score", "training_recall_score", "training_roc_auc",
                                    "training_score")} | {"mean_test_score": 3, "std_fit_time": 3}
    assert default_metric(counts(7, autolog), "roc_auc").metric == "training_roc_auc"
    assert default_metric(counts(7, autolog), "accuracy").metric == "training_accuracy_score"
    assert default_metric(counts(7, autolog), "f1").metric == "training_f1_score"
    # a headline that is none of the runs' task's metrics: the task's own headline kind (binary: ROC-AUC) first
    assert default_metric(counts(7, autolog), "my_metric").metric == "training_roc_auc"
    with_test = autolog | {"accuracy_score_X_test": 4}
    assert default_metric(counts(7, with_test), "roc_auc").metric == "accuracy_score_X_test"
    regression = {"training_mean_squared_error": 5, "training_root_mean_squared_error": 5,
                  "training_mean_absolute_error": 5, "training_r2_score": 5, "training_score": 5}
    # regression runs (the names say so): the task's headline kind, RMSE, lower is better
    picked = default_metric(counts(5, regression), "roc_auc")
    assert (picked.metric, picked.direction) == ("training_root_mean_squared_error", "min")
    errors = {"val_rmse": 10, "val_mae": 10, "train_rmse": 10}
    picked = default_metric(counts(10, errors), "roc_auc")
    assert (picked.metric, picked.direction) == ("val_rmse", "min")
    sweep_children = {"mean_test_score": 9, "mean_fit_time": 9, "rank_test_score": 9, "std_test_score": 9}
    assert default_metric(counts(9, sweep_children), "roc_auc").metric == "mean_test_score"


def test_a_clear_majority_beats_a_better_known_name() -> None:
    assert default_metric(counts(10, {"accuracy": 5, "custom_quality": 10}), "roc_auc").metric == "custom_quality"
    assert default_metric(counts(10, {"accuracy": 9, "custom_quality": 10}), "roc_auc").metric == "accuracy"


def test_finished_runs_count_when_any_has_metrics() -> None:
    """Two running runs logging `progress` do not outvote the finished runs' `accuracy`."""
    mixed = counts(5, {"progress": 4, "accuracy": 3}, finished=3, present_finished={"accuracy": 3, "progress": 2})
    chosen = default_metric(mixed, "roc_auc")
    assert chosen.metric == "accuracy" and "3 of 3 finished runs" in chosen.reason
    running = counts(3, {"progress": 3}, finished=0, present_finished={})
    assert default_metric(running, "roc_auc").reason == "the most runs have it (3 of 3 runs); roc_auc is in none"


def test_an_empty_experiment_uses_the_headline() -> None:
    chosen = default_metric(counts(0, {}), "roc_auc")
    assert (chosen.metric, chosen.source) == ("roc_auc", "headline") and "no runs yet" in chosen.reason


def test_the_users_pick_wins() -> None:
    chosen = best_by(None, "roc_auc", "log_loss")
    assert (chosen.metric, chosen.direction, chosen.source) == ("log_loss", "min", "chosen")
    assert best_by(None, "roc_auc", "log_loss", "max").direction == "max"
    assert best_by(counts(2, {"roc_auc": 2}), "roc_auc", None, "min").direction == "min"
    with pytest.raises(ValueError):
        best_by(None, "roc_auc")


def test_regression_runs_are_best_by_rmse_ascending() -> None:
    ours = counts(5, {"rmse": 5, "mae": 5, "r2": 5, "mape": 5, "max_error": 5, "cv_rmse_mean": 5})
    chosen = default_metric(ours, "roc_auc")
    assert (chosen.metric, chosen.direction, chosen.source) == ("rmse", "min", "headline")
    assert chosen.reason == "the regression task's headline metric, in 5 of 5 finished runs"
    autolog = counts(3, {"training_rmse": 3, "training_r2_score": 3, "training_mean_squared_error": 3,
                         "training_mean_absolute_error": 3, "training_score": 3})
    chosen = default_metric(autolog, "roc_auc")
    assert (chosen.metric, chosen.direction, chosen.source) == ("training_rmse", "min", "most_runs")
    assert chosen.reason == "the most runs have it (3 of 3 finished runs); roc_auc is in none"


def test_multiclass_runs_keep_the_configured_headline_when_they_have_it() -> None:
    ours = counts(4, {"accuracy": 4, "f1_macro": 4, "roc_auc": 4, "log_loss": 4, "balanced_accuracy": 4})
    chosen = default_metric(ours, "roc_auc")
    assert (chosen.metric, chosen.direction, chosen.source) == ("roc_auc", "max", "headline")
