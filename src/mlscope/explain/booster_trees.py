"""Gradient-boosted trees of scikit-learn (HistGradientBoosting), XGBoost and LightGBM as a TreeEnsemble.

Each library is read from its own fitted structures, converted to the ensemble's one convention
(`x <= threshold` goes left, `missing_left` for NaN):
- HistGradientBoosting compares `x <= num_threshold` in float64, NaN follows `missing_go_to_left`;
  leaf values already carry the learning rate.
- XGBoost compares `x < split` in float32, NaN follows `default_left`; the strict comparison becomes
  `x <= nextafter(split, -inf)` in float32 (`float32=True`). Its leaf values are float32 as read.
- LightGBM compares `x <= threshold` in float64, after reading any |x| <= 1e-35 (its zero threshold,
  which it also uses as a split point next to 0) as 0.0; thresholds within 1e-35 of zero are moved so
  that the plain comparison agrees. Its missing type decides NaN: "NaN" follows `default_left`, "None"
  turns NaN into 0.0 (so NaN goes where 0.0 goes), "Zero" makes every zero missing, which one
  threshold cannot express (unsupported).

The base (XGBoost's base_score, HistGradientBoosting's baseline, LightGBM's zero) is not re-derived
from each library's rules: it is the model's own raw output minus the sum of trees on probe rows built
from the split thresholds (values on, just below and just above each split, NaN, 0), and it must be the
same on every probe row, or the model was not read exactly and `UnsupportedTrees` says so. The probes
also check the link: a classifier's probability must be the sigmoid (binary) or softmax (multiclass) of
the raw output, a regressor's prediction the raw output itself. XGBoost adds its trees in float32, so its
own margin carries float32 rounding (relative ~1e-7); `predict_raw` is the float64 sum of the same
leaves, and the base is checked to that rounding."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from mlscope.explain.tree_models import LOG_ODDS, PREDICTION, TreeEnsemble, UnsupportedTrees, concatenate

PROBE_ROWS = 256
PROBE_SEED = 0
FLOAT64_TOLERANCE = 1e-9
_EPS32 = float(np.finfo(np.float32).eps)


def extract(estimator: Any) -> TreeEnsemble:
    """The fitted booster as a TreeEnsemble whose `predict_raw` is the model's raw output (margin)."""
    name, module = type(estimator).__name__, type(estimator).__module__
    if not _fitted(estimator):
        raise UnsupportedTrees(f"{name} is not fitted")
    if name.startswith("HistGradientBoosting") and module.startswith("sklearn"):
        reading = _hist_gradient_boosting(estimator)
    elif module.startswith("xgboost"):
        reading = _xgboost(estimator)
    elif module.startswith("lightgbm"):
        reading = _lightgbm(estimator)
    else:
        raise UnsupportedTrees(f"{name} is not a HistGradientBoosting, XGBoost or LightGBM model")
    return _with_checked_base(name, reading)


def _fitted(estimator: Any) -> bool:
    if type(estimator).__name__ == "Booster":
        return True
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError):
        return False
    return True


@dataclass
class _Reading:
    """Trees as read (base zero), and the model's own outputs on a probe matrix."""

    trees: TreeEnsemble
    raw: Callable[[np.ndarray], np.ndarray]  # (rows, outputs) raw output
    transformed: Callable[[np.ndarray], np.ndarray] | None  # probability (classifiers) or prediction
    float32_sums: bool  # the library adds its trees in float32


def _with_checked_base(name: str, reading: _Reading) -> TreeEnsemble:
    trees = reading.trees
    probe = _probe(trees)
    # One thread: the probe is small, and an OpenMP team (HistGradientBoosting, LightGBM, XGBoost) per
    # call costs more than the work on a busy machine (2.4 s instead of 0.03 s for 100 trees measured).
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        raw = _columns(reading.raw(probe), trees.n_outputs)
        transformed = None if reading.transformed is None else np.asarray(reading.transformed(probe), dtype=np.float64)
    reached = trees.value[trees.leaves(probe)]  # (rows, trees, outputs)
    offsets = raw - reached.sum(axis=1)
    base = np.median(offsets, axis=0)
    if reading.float32_sums:
        magnitude = np.abs(reached).sum(axis=1) + np.abs(raw)
        tolerance = 2 * _EPS32 * (trees.n_trees / trees.n_outputs + 2) * magnitude
    else:
        tolerance = FLOAT64_TOLERANCE * np.maximum(1.0, np.abs(raw))
    spread = np.abs(offsets - base)
    if (spread > tolerance).any():
        raise UnsupportedTrees(
            f"{name} could not be read exactly: its raw output minus the sum of its trees varies by "
            f"{float(spread.max()):.3g} across rows (a link, dart weights, linear leaves or a split type not read)")
    trees.base = base.astype(np.float64)
    if transformed is not None:
        _check_link(name, trees.output, raw, transformed, reading.float32_sums)
    return trees


def _check_link(name: str, output: str, raw: np.ndarray, transformed: np.ndarray, float32_sums: bool) -> None:
    if output == LOG_ODDS:
        if raw.shape[1] == 1:
            expected = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            got = transformed[:, -1] if transformed.ndim == 2 else transformed
            link = "sigmoid"
        else:
            shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
            expected, got, link = shifted / shifted.sum(axis=1, keepdims=True), transformed, "softmax"
    else:
        expected, got, link = raw[:, 0], transformed.reshape(len(raw), -1)[:, 0], "identity"
    tolerance = 1e-5 if float32_sums else 1e-9
    error = np.abs(expected - got) / np.maximum(1.0, np.abs(expected))
    if not np.all(error <= tolerance):
        what = "probability" if output == LOG_ODDS else "prediction"
        raise UnsupportedTrees(f"{name}'s {what} is not the {link} of the sum of its trees "
                               f"(its objective or loss has another link)")


def _columns(raw: Any, n_outputs: int) -> np.ndarray:
    return np.asarray(raw, dtype=np.float64).reshape(-1, n_outputs)


def _probe(trees: TreeEnsemble) -> np.ndarray:
    """Rows whose values sit on, just below and just above each split, plus NaN and 0, per column."""
    rng = np.random.default_rng(PROBE_SEED)
    inner = trees.left >= 0
    kind = np.float32 if trees.float32 else np.float64
    probe = np.empty((PROBE_ROWS, trees.n_columns))
    for column in range(trees.n_columns):
        cuts = np.unique(trees.threshold[inner & (trees.feature == column)]).astype(kind)
        cuts = cuts[np.isfinite(cuts)]
        candidates = np.concatenate([
            cuts, np.nextafter(cuts, kind(np.inf)), np.nextafter(cuts, kind(-np.inf)), [np.nan, 0.0, -1.0, 1.0]])
        probe[:, column] = rng.choice(candidates.astype(np.float64), size=PROBE_ROWS)
    return probe


def _as_model_input(estimator: Any, X: np.ndarray) -> Any:
    """The probe as the estimator was fitted: a DataFrame with its column names when it has them."""
    try:
        names = getattr(estimator, "feature_names_in_", None)
    except Exception:  # LightGBM's property raises when fitted without names
        names = None
    if names is None:
        return X
    import pandas as pd

    return pd.DataFrame(X, columns=list(names))


def _single_tree(n_nodes: int, left: Any, right: Any, feature: Any, threshold: Any, missing_left: Any,
                 leaf_value: Any, output_column: int, n_outputs: int, n_columns: int, float32: bool) -> TreeEnsemble:
    left = np.asarray(left, dtype=np.int64)
    value = np.zeros((n_nodes, n_outputs))
    value[left < 0, output_column] = np.asarray(leaf_value, dtype=np.float64)[left < 0]
    return TreeEnsemble(
        roots=np.zeros(1, dtype=np.int64), left=left, right=np.asarray(right, dtype=np.int64),
        feature=np.where(left >= 0, np.asarray(feature, dtype=np.int64), -1),
        threshold=np.where(left >= 0, np.asarray(threshold, dtype=np.float64), 0.0),
        missing_left=np.asarray(missing_left, dtype=bool) & (left >= 0), value=value,
        base=np.zeros(n_outputs), output="", output_names=[], n_columns=n_columns, float32=float32)


def _labelled(trees: list[TreeEnsemble], output: str, names: list[str]) -> TreeEnsemble:
    ensemble = concatenate(trees)
    ensemble.output, ensemble.output_names = output, names
    return ensemble


def _class_outputs(estimator: Any) -> tuple[str, list[str]]:
    classes = [str(c) for c in estimator.classes_]
    return LOG_ODDS, classes[1:] if len(classes) == 2 else classes


# --- scikit-learn HistGradientBoosting -------------------------------------------------------------

def _hist_gradient_boosting(estimator: Any) -> _Reading:
    name = type(estimator).__name__
    if getattr(estimator, "is_categorical_", None) is not None and np.any(estimator.is_categorical_):
        raise UnsupportedTrees(f"{name} has categorical features (their splits are category sets, not thresholds)")
    link = type(estimator._loss.link).__name__
    classifier = hasattr(estimator, "classes_")
    if not classifier and link != "IdentityLink":
        raise UnsupportedTrees(f"{name} with loss={estimator.loss!r} predicts through a link ({link}), "
                               "not the sum of its trees")
    n_outputs = estimator.n_trees_per_iteration_
    output, names = _class_outputs(estimator) if classifier else (PREDICTION, ["prediction"])
    n_columns = estimator.n_features_in_
    trees = []
    for iteration in estimator._predictors:
        for column, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise UnsupportedTrees(f"{name} has categorical splits")
            leaf = nodes["is_leaf"].astype(bool)
            trees.append(_single_tree(
                len(nodes), np.where(leaf, -1, nodes["left"].astype(np.int64)),
                np.where(leaf, -1, nodes["right"].astype(np.int64)), nodes["feature_idx"], nodes["num_threshold"],
                nodes["missing_go_to_left"].astype(bool), nodes["value"], column, n_outputs, n_columns, False))
    raw = (lambda X: estimator.decision_function(_as_model_input(estimator, X))) if classifier \
        else (lambda X: estimator.predict(_as_model_input(estimator, X)))
    transformed = (lambda X: estimator.predict_proba(_as_model_input(estimator, X))) if classifier else None
    return _Reading(_labelled(trees, output, names), raw, transformed, False)


# --- XGBoost ---------------------------------------------------------------------------------------

def _xgboost(model: Any) -> _Reading:
    import xgboost

    name = type(model).__name__
    if isinstance(model, xgboost.Booster):
        booster, sklearn_api = model, False
    elif hasattr(model, "get_booster"):
        booster, sklearn_api = model.get_booster(), True
        missing = model.get_params().get("missing", np.nan)
        if missing is not None and not (isinstance(missing, float) and np.isnan(missing)):
            raise UnsupportedTrees(f"{name} treats {missing!r} as missing (only NaN can be read exactly)")
    else:
        raise UnsupportedTrees(f"{name} is not an XGBoost model this reader knows")
    if any(kind == "c" for kind in (booster.feature_types or [])):
        raise UnsupportedTrees(f"{name} has categorical features (their splits are category sets, not thresholds)")
    learner = json.loads(booster.save_raw(raw_format="json"))["learner"]
    objective = learner["objective"]["name"]
    gradient = learner["gradient_booster"]
    weights = None
    if gradient["name"] == "dart":
        weights = np.asarray(gradient["weight_drop"], dtype=np.float64)
        gradient = gradient["gbtree"]
    elif gradient["name"] != "gbtree":
        raise UnsupportedTrees(f"{name} uses booster={gradient['name']!r}, not trees")
    model_json = gradient["model"]
    n_groups = max(1, int(learner["learner_model_param"]["num_class"]))
    if int(learner["learner_model_param"].get("num_target", "1")) > 1:
        raise UnsupportedTrees(f"{name} has several targets")
    n_columns = int(learner["learner_model_param"]["num_feature"])

    if sklearn_api:
        classifier = hasattr(model, "classes_")
        output, names = _class_outputs(model) if classifier else (PREDICTION, ["prediction"])
        first, last = model._get_iteration_range(None)
    else:
        classifier = objective.startswith(("binary:", "multi:"))
        output = LOG_ODDS if classifier else PREDICTION
        names = [str(k) for k in range(n_groups)] if n_groups > 1 else (["1"] if classifier else ["prediction"])
        first, last = 0, 0
    if first != 0:
        raise UnsupportedTrees(f"{name} predicts from iteration {first}, not the first")
    per_round = n_groups * int(model_json["gbtree_model_param"]["num_parallel_tree"])
    n_trees = len(model_json["trees"]) if last == 0 else min(len(model_json["trees"]), last * per_round)

    trees = []
    for index in range(n_trees):
        tree = model_json["trees"][index]
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise UnsupportedTrees(f"{name} has multi-output trees")
        if any(tree["split_type"]):
            raise UnsupportedTrees(f"{name} has categorical splits")
        split = np.asarray(tree["split_conditions"], dtype=np.float32)
        below = np.nextafter(split, np.float32(-np.inf))  # x < split  <=>  x <= below, in float32
        leaf_value = split.astype(np.float64) * (1.0 if weights is None else weights[index])
        trees.append(_single_tree(
            len(split), tree["left_children"], tree["right_children"], tree["split_indices"], below,
            np.asarray(tree["default_left"], dtype=bool), leaf_value, int(model_json["tree_info"][index]),
            n_groups, n_columns, True))

    if sklearn_api:
        raw = lambda X: model.predict(_as_model_input(model, X), output_margin=True)  # noqa: E731
        transformed = (lambda X: model.predict_proba(_as_model_input(model, X))) if classifier \
            else (lambda X: model.predict(_as_model_input(model, X)))
    else:
        def matrix(X: np.ndarray) -> Any:
            return xgboost.DMatrix(X, missing=np.nan, feature_names=booster.feature_names)

        raw = lambda X: booster.predict(matrix(X), output_margin=True)  # noqa: E731
        transformed = lambda X: booster.predict(matrix(X))  # noqa: E731
    return _Reading(_labelled(trees, output, names), raw, transformed, True)


# --- LightGBM --------------------------------------------------------------------------------------

def _lightgbm(model: Any) -> _Reading:
    name = type(model).__name__
    if not hasattr(model, "booster_"):
        raise UnsupportedTrees(f"{name} is not a fitted LightGBM scikit-learn model")
    booster = model.booster_
    if booster.pandas_categorical:
        raise UnsupportedTrees(f"{name} has categorical features (their splits are category sets, not thresholds)")
    if str(booster.params.get("linear_tree", "false")).lower() in ("true", "1"):
        raise UnsupportedTrees(f"{name} has linear trees (a linear model in each leaf)")
    dump = booster.dump_model()
    n_outputs = int(dump["num_tree_per_iteration"])
    n_columns = int(dump["max_feature_idx"]) + 1
    classifier = hasattr(model, "classes_")
    output, names = _class_outputs(model) if classifier else (PREDICTION, ["prediction"])
    # Random-forest mode averages its trees for the probability and prediction, but LightGBM's raw_score
    # is the plain sum: the margin the link applies to is the average (checked on the probe rows below).
    scale = 1.0 / (len(dump["tree_info"]) // n_outputs) if dump.get("average_output") else 1.0
    trees = [_lightgbm_tree(name, info["tree_structure"], index % n_outputs, n_outputs, n_columns, scale)
             for index, info in enumerate(dump["tree_info"])]
    raw = lambda X: scale * np.asarray(model.predict(_as_model_input(model, X), raw_score=True))  # noqa: E731
    transformed = (lambda X: model.predict_proba(_as_model_input(model, X))) if classifier \
        else (lambda X: model.predict(_as_model_input(model, X)))
    return _Reading(_labelled(trees, output, names), raw, transformed, False)


def _lightgbm_tree(name: str, root: dict[str, Any], output_column: int, n_outputs: int, n_columns: int,
                   scale: float) -> TreeEnsemble:
    left: list[int] = []
    right: list[int] = []
    feature: list[int] = []
    threshold: list[float] = []
    missing_left: list[bool] = []
    leaf_value: list[float] = []
    stack = [(root, -1, False)]  # node, parent index, is the parent's left child
    while stack:
        node, parent, is_left = stack.pop()
        index = len(left)
        if parent >= 0:
            (left if is_left else right)[parent] = index
        if "leaf_value" in node:
            if "leaf_coeff" in node:
                raise UnsupportedTrees(f"{name} has linear trees (a linear model in each leaf)")
            left.append(-1), right.append(-1), feature.append(-1), threshold.append(0.0)
            missing_left.append(False), leaf_value.append(float(node["leaf_value"]) * scale)
            continue
        if node["decision_type"] != "<=":
            raise UnsupportedTrees(f"{name} has categorical splits")
        cut = float(node["threshold"])
        missing = node["missing_type"]
        if missing == "Zero":
            raise UnsupportedTrees(f"{name} treats zero as missing (zero_as_missing), which one threshold cannot express")
        nan_left = bool(node["default_left"]) if missing == "NaN" else 0.0 <= cut
        left.append(-1), right.append(-1), feature.append(int(node["split_feature"])), threshold.append(_lightgbm_cut(cut))
        missing_left.append(nan_left), leaf_value.append(0.0)
        stack.append((node["right_child"], index, False))
        stack.append((node["left_child"], index, True))
    return _single_tree(len(left), left, right, feature, threshold, missing_left, leaf_value, output_column,
                        n_outputs, n_columns, False)


_LIGHTGBM_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold: |x| <= it is read as 0.0 before any split


def _lightgbm_cut(cut: float) -> float:
    """The threshold on the raw value equivalent to LightGBM's `x <= cut` after it reads tiny x as 0.0."""
    if 0.0 <= cut < _LIGHTGBM_ZERO:
        return _LIGHTGBM_ZERO  # left: x <= cut, or tiny (read as 0 <= cut)
    if -_LIGHTGBM_ZERO <= cut < 0.0:
        return float(np.nextafter(-_LIGHTGBM_ZERO, -np.inf))  # left: x <= cut and not tiny, i.e. x < -zero
    return cut
