"""scikit-learn's own tree models read into a `TreeEnsemble`, with the raw output each model reports.

- RandomForest / ExtraTrees / DecisionTree classifiers: `predict_proba`, every class a column. Each
  tree's leaf holds class fractions; the forest averages them, so a leaf's value is its fractions
  divided by the number of trees.
- RandomForest / ExtraTrees / DecisionTree regressors: `predict` (one column per output).
- GradientBoosting classifier: `decision_function`, the margin before the link. Binary: one column
  (the positive class); multiclass: one column per class, and each tree feeds only its class's column.
- GradientBoosting regressor: `predict`.

scikit-learn compares a float32 copy of the row with float64 thresholds and sends a missing value to
the side `tree_.missing_go_to_left` names; both carry over unchanged. Boosting's starting score (the
`init` estimator) is read as the model's raw output minus the sum of its trees on probe rows, and must
be the same on every row; a model initialised by a row-dependent estimator is not readable exactly."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mlscope.explain.tree_models import (
    LOG_ODDS,
    PREDICTION,
    PROBABILITY,
    TreeEnsemble,
    UnsupportedTrees,
    concatenate,
)

_FORESTS = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)
_SINGLE = (DecisionTreeClassifier, DecisionTreeRegressor)
_BOOSTING = (GradientBoostingClassifier, GradientBoostingRegressor)
_CLASSIFIERS = (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier)


def extract(estimator: Any) -> TreeEnsemble:
    """The fitted scikit-learn tree model as a TreeEnsemble, or UnsupportedTrees with the reason."""
    name = type(estimator).__name__
    if not isinstance(estimator, _FORESTS + _SINGLE + _BOOSTING):
        raise UnsupportedTrees(f"{name} is not a scikit-learn tree model this reader knows")
    if not hasattr(estimator, "n_features_in_"):
        raise UnsupportedTrees(f"{name} is not fitted")
    if isinstance(estimator, _BOOSTING):
        return _boosting(estimator)
    trees = list(estimator.estimators_) if isinstance(estimator, _FORESTS) else [estimator]
    if isinstance(estimator, _CLASSIFIERS):
        if getattr(estimator, "n_outputs_", 1) != 1:
            raise UnsupportedTrees(f"{name} predicts several targets at once")
        output, names = PROBABILITY, [str(c) for c in estimator.classes_]
    else:
        output = PREDICTION
        n_outputs = getattr(estimator, "n_outputs_", 1)
        names = ["prediction"] if n_outputs == 1 else [f"prediction {k}" for k in range(n_outputs)]
    parts = [_tree(t.tree_, _leaf_values(t.tree_, classifier=output == PROBABILITY) / len(trees),
                   estimator.n_features_in_) for t in trees]
    ensemble = concatenate(parts)
    ensemble.output, ensemble.output_names = output, names
    return ensemble


def _leaf_values(tree: Any, classifier: bool) -> np.ndarray:
    """(nodes, outputs) the value each node predicts; zero at internal nodes."""
    if classifier:
        value = tree.value[:, 0, :].astype(np.float64)
        value = value / value.sum(axis=1, keepdims=True)  # predict_proba normalises the same way
    else:
        value = tree.value[:, :, 0].astype(np.float64)
    value[tree.children_left >= 0] = 0.0
    return value


def _tree(tree: Any, value: np.ndarray, n_columns: int) -> TreeEnsemble:
    leaf = tree.children_left < 0
    missing = getattr(tree, "missing_go_to_left", None)
    return TreeEnsemble(
        roots=np.array([0], dtype=np.int64),
        left=np.where(leaf, -1, tree.children_left).astype(np.int64),
        right=np.where(leaf, -1, tree.children_right).astype(np.int64),
        feature=np.where(leaf, -1, tree.feature).astype(np.int64),
        threshold=np.where(leaf, 0.0, tree.threshold).astype(np.float64),
        missing_left=(np.zeros(len(leaf), dtype=bool) if missing is None
                      else (np.asarray(missing) != 0) & ~leaf),
        value=np.ascontiguousarray(value, dtype=np.float64),
        base=np.zeros(value.shape[1]),
        output=PREDICTION, output_names=[], n_columns=n_columns, float32=True,
    )


def _boosting(model: Any) -> TreeEnsemble:
    name = type(model).__name__
    init = model.init_
    if not (init == "zero" or isinstance(init, DummyClassifier | DummyRegressor)):
        raise UnsupportedTrees(f"{name} starts from a {type(init).__name__}, whose score depends on the row")
    stages, columns = model.estimators_.shape
    parts = []
    for stage in range(stages):
        for k in range(columns):
            tree = model.estimators_[stage, k].tree_
            value = np.zeros((tree.node_count, columns))
            value[:, k] = _leaf_values(tree, classifier=False)[:, 0] * model.learning_rate
            parts.append(_tree(tree, value, model.n_features_in_))
    ensemble = concatenate(parts)
    if isinstance(model, GradientBoostingClassifier):
        classes = [str(c) for c in model.classes_]
        ensemble.output, ensemble.output_names = LOG_ODDS, classes[-1:] if columns == 1 else classes
        raw = model.decision_function
    else:
        ensemble.output, ensemble.output_names = PREDICTION, ["prediction"]
        raw = model.predict
    probes = _probe_rows(ensemble)
    with warnings.catch_warnings():  # probes are a plain matrix; the model may know column names
        warnings.simplefilter("ignore", UserWarning)
        scores = np.asarray(raw(probes), dtype=np.float64)
    offsets = scores.reshape(len(probes), columns) - ensemble.predict_raw(probes)
    if np.ptp(offsets, axis=0).max() > 1e-12:
        raise UnsupportedTrees(f"{name}'s starting score differs between rows")
    ensemble.base = offsets.mean(axis=0)
    return ensemble


def _probe_rows(ensemble: TreeEnsemble, count: int = 16) -> np.ndarray:
    """Rows on both sides of the trees' thresholds, so the probes reach different leaves."""
    rng = np.random.default_rng(0)
    probes = np.zeros((count, ensemble.n_columns))
    inner = ensemble.left >= 0
    for j in range(ensemble.n_columns):
        cuts = ensemble.threshold[inner & (ensemble.feature == j)]
        if len(cuts):
            probes[:, j] = rng.choice(cuts, count) + rng.choice([-1e-3, 1e-3], count)
    return probes
