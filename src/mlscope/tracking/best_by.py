"""Which metric decides an experiment's best run when the user has not picked one.

The configured headline metric when most runs have it; else, when the metric names say which task the runs
are (`task.infer_from_run`: rmse, r2 ... for regression) and the configured headline is not one of that
task's metrics, the task's headline (RMSE for regression) when most runs have it, its kind ranked first below; otherwise the metric the most runs have, near-ties
(within 10% of the most common) broken by how well known the name is — evaluation metrics before training
ones, the headline's own variants first, then accuracy, ROC-AUC, F1, R², RMSE, MAE, log loss, … — never a
metric only one run has while several runs exist. "Runs" are the finished ones when any finished run has a
metric, else all of them. The user's pick always wins."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from mlscope import task
from mlscope.tracking.index import MetricCounts
from mlscope.tracking.runs import infer_direction

Source = Literal["chosen", "headline", "most_runs"]
NEAR_TIE = 0.9

# Most wanted first. Long scikit-learn names map to their short form; autolog's names are these with a
# `training_` prefix, `_score` suffix or a `_<dataset variable>` tail (post-training metrics).
_KNOWN: dict[str, str] = {
    "accuracy_score": "accuracy", "accuracy": "accuracy",
    "roc_auc_score": "roc_auc", "roc_auc": "roc_auc",
    "f1_score": "f1", "f1": "f1",
    "r2_score": "r2", "r2": "r2",
    "root_mean_squared_error": "rmse", "rmse": "rmse",
    "mean_absolute_error": "mae", "mae": "mae",
    "log_loss": "log_loss", "logloss": "log_loss",
    "auc": "auc",
    "precision_score": "precision", "precision": "precision",
    "recall_score": "recall", "recall": "recall",
    "mean_squared_error": "mse", "mse": "mse",
    "score": "score",
    "loss": "loss",
}
_ORDER = list(dict.fromkeys(_KNOWN.values()))
_MATCH_ORDER = sorted(_KNOWN, key=len, reverse=True)  # longest first: roc_auc_score before roc_auc
_TRAINING_PREFIXES = ("training_", "train_", "mean_train_")
_EVALUATION_PREFIXES = ("mean_test_", "best_cv_", "test_", "val_", "valid_", "validation_", "eval_", "holdout_")


class BestBy(BaseModel):
    """The metric (and direction) that decides the best run, where it came from and why."""

    metric: str
    direction: str
    source: Source
    reason: str


def best_by(counts: MetricCounts | None, headline: str, picked: str | None = None,
            direction: str | None = None) -> BestBy:
    """The user's `picked` metric when given (`counts` may then be None), else the experiment's default."""
    if picked:
        return BestBy(metric=picked, direction=direction or infer_direction(picked), source="chosen",
                      reason=f"{picked} was chosen")
    if counts is None:
        raise ValueError("counts are needed when no metric is picked")
    chosen = default_metric(counts, headline)
    return chosen.model_copy(update={"direction": direction}) if direction else chosen


def default_metric(counts: MetricCounts, headline: str) -> BestBy:
    """The default "best by" metric of an experiment from how many runs have each metric (module doc)."""
    use_finished = bool(counts.present_finished)
    present = counts.present_finished if use_finished else counts.present
    total = counts.finished if use_finished else counts.runs
    runs = "finished runs" if use_finished else "runs"
    with_headline = present.get(headline, 0)
    if total and with_headline * 2 > total:
        return _choice(headline, "headline", f"the headline metric, in {with_headline} of {total} {runs}")
    preferred = headline
    inferred = task.infer_from_run({}, present)  # regression runs: rmse, not a configured roc_auc
    if inferred is not None and headline not in inferred.metric_names:
        with_task = present.get(inferred.headline, 0)
        if total and with_task * 2 > total:
            return _choice(inferred.headline, "headline", f"the {inferred.name} task's headline metric, in "
                                                          f"{with_task} of {total} {runs}")
        preferred = inferred.headline
    least = 2 if counts.runs >= 2 else 1
    candidates = {key: n for key, n in present.items() if counts.present.get(key, 0) >= least}
    headline_note = f"{headline} is in {with_headline} of {total}" if with_headline else f"{headline} is in none"
    if not candidates:
        why = "no runs yet" if not counts.runs else f"no metric is in more than one run; {headline_note}"
        return _choice(headline, "headline", f"the headline metric ({why})")
    most = max(candidates.values())
    near = [key for key, n in candidates.items() if n >= NEAR_TIE * most]
    chosen = min(near, key=lambda key: (*_preference(key, preferred), -candidates[key], key))
    return _choice(chosen, "most_runs",
                   f"the most runs have it ({candidates[chosen]} of {total} {runs}); {headline_note}")


def _choice(metric: str, source: Source, reason: str) -> BestBy:
    return BestBy(metric=metric, direction=infer_direction(metric), source=source, reason=reason)


def _preference(key: str, headline: str) -> tuple[int, int]:
    """(0 for evaluation data, 1 for training data; the rank of the name: the headline's kind first, then
    _ORDER, unknown names last)."""
    kind, training = _kind(key)
    if kind == _kind(headline)[0]:
        return training, 0
    return training, 1 + (_ORDER.index(kind) if kind in _ORDER else len(_ORDER))


def _kind(key: str) -> tuple[str, int]:
    """What a metric measures, as far as its name says ('accuracy' for `training_accuracy_score`,
    `accuracy_score-2_X_test`, `val_accuracy`), and 1 when it was measured on training data."""
    name = key.lower()
    training = 0
    for prefix in _TRAINING_PREFIXES:
        if name.startswith(prefix):
            name, training = name[len(prefix):], 1
            break
    else:
        for prefix in _EVALUATION_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
    for known in _MATCH_ORDER:
        if name == known or name.startswith((known + "_", known + "-")):
            return _KNOWN[known], training
    return name, training
