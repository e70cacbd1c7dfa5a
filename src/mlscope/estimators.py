"""Exact, fast outputs of fitted scikit-learn estimators on an encoded matrix: P(positive class) of a
binary classifier, every class's probability of a multiclass one, the prediction of a regressor.

Shared by the prediction API (one row to a few thousand) and the Shapley engine (thousands of hybrid
rows): forests (classifiers' positive class, regressors) by a traversal of flattened node arrays (numba
when importable), binary logistic regression by scikit-learn's own formula, every other estimator by its
`predict_proba` / `predict`. Each path gives the numbers `predict_proba` / `predict` give (tests compare
them bit for bit)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression

Head = Callable[[np.ndarray], np.ndarray]

_LANES = 8  # rows traversed together by the numba kernel, so their independent node loads overlap


@cache
def _numba_kernel(columns: bool = False) -> Callable[..., np.ndarray] | None:
    """The forest traversal compiled by numba (a dependency of shap), or None when unavailable; `columns`:
    the leaf values have one column per class (every class's probability at once). Two kernels on purpose:
    the column kernel run on one column, or one traversal with an inlined accumulation, measured 20-60%
    slower on 1,000-row batches of a 200-tree forest."""
    try:
        import numba
    except ImportError:
        return None

    def kernel(roots: np.ndarray, children: np.ndarray, feature: np.ndarray, threshold: np.ndarray,
               value: np.ndarray, depths: np.ndarray, X: np.ndarray) -> np.ndarray:
        n, n_trees = X.shape[0], roots.shape[0]
        out = np.zeros(n)
        nodes = np.empty(_LANES, np.int32)
        for start in range(0, n, _LANES):
            lanes = min(_LANES, n - start)
            for t in range(n_trees):
                for i in range(lanes):
                    nodes[i] = roots[t]
                for _ in range(depths[t]):
                    for i in range(lanes):
                        node = nodes[i]
                        nodes[i] = children[2 * node + (X[start + i, feature[node]] > threshold[node])]
                for i in range(lanes):
                    out[start + i] += value[nodes[i]]
        for i in range(n):
            out[i] /= n_trees
        return out

    def kernel_columns(roots: np.ndarray, children: np.ndarray, feature: np.ndarray, threshold: np.ndarray,
                       value: np.ndarray, depths: np.ndarray, X: np.ndarray) -> np.ndarray:
        n, n_trees, k = X.shape[0], roots.shape[0], value.shape[1]
        out = np.zeros((n, k))
        nodes = np.empty(_LANES, np.int32)
        for start in range(0, n, _LANES):
            lanes = min(_LANES, n - start)
            for t in range(n_trees):
                for i in range(lanes):
                    nodes[i] = roots[t]
                for _ in range(depths[t]):
                    for i in range(lanes):
                        node = nodes[i]
                        nodes[i] = children[2 * node + (X[start + i, feature[node]] > threshold[node])]
                for i in range(lanes):
                    for c in range(k):
                        out[start + i, c] += value[nodes[i], c]
        for i in range(n):
            for c in range(k):
                out[i, c] /= n_trees
        return out

    chosen = kernel_columns if columns else kernel
    try:
        return numba.njit(nogil=True, cache=True)(chosen)
    except RuntimeError:  # no writable cache directory
        return numba.njit(nogil=True)(chosen)


class Forest:
    """P(positive) of a RandomForest/ExtraTrees classifier (or the prediction of such a regressor, with
    `positive` 0), as scikit-learn computes it: input cast to float32, each tree's leaf fraction (leaf mean
    for a regressor; `tree_.value`, already normalised) added tree by tree starting from 0.0, the sum
    divided by the number of trees; with `positive` None, every class's probability (rows, classes) the
    same way, column by column. The trees are flattened into node arrays whose
    leaves point to themselves, so `depth` steps of `node = children[2 * node + (x > threshold)]` reach
    every leaf (x <= threshold goes left, as in scikit-learn). The matrix is finite (CompiledPredictor
    checks), so scikit-learn's routing of missing values never applies."""

    def __init__(self, forest: Any, positive: int | None, accelerate: bool) -> None:
        trees = [estimator.tree_ for estimator in forest.estimators_]
        sizes = np.array([tree.node_count for tree in trees])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.trees = trees
        column = slice(None) if positive is None else positive
        self.leaf_values = [np.ascontiguousarray(tree.value[:, 0, column]) for tree in trees]
        self.roots = offsets.astype(np.int32)
        self.depths = np.array([tree.max_depth for tree in trees], dtype=np.int32)
        self.children, self.feature, self.threshold = self._flatten(trees, offsets)
        self.value = np.concatenate(self.leaf_values)
        self.kernel = _numba_kernel(columns=positive is None) if accelerate else None
        if self.kernel is not None:
            try:
                self.kernel(*self._arrays, np.zeros((1, forest.n_features_in_), dtype=np.float32))
            except Exception:  # noqa: BLE001 - a numba/llvmlite install that cannot compile: use numpy
                self.kernel = None

    @staticmethod
    def _flatten(trees: list[Any], offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        children, feature, threshold = [], [], []
        for tree, offset in zip(trees, offsets, strict=True):
            own = np.arange(tree.node_count)
            leaf = tree.children_left < 0
            left = np.where(leaf, own, tree.children_left) + offset
            right = np.where(leaf, own, tree.children_right) + offset
            children.append(np.column_stack([left, right]).ravel())
            feature.append(np.where(leaf, 0, tree.feature))
            threshold.append(np.where(leaf, np.inf, tree.threshold))
        return (np.concatenate(children).astype(np.int32), np.concatenate(feature).astype(np.int32),
                np.concatenate(threshold))

    @property
    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self.roots, self.children, self.feature, self.threshold, self.value, self.depths

    @property
    def method(self) -> str:
        return "numba kernel" if self.kernel is not None else "numpy"

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        X = matrix.astype(np.float32)
        if self.kernel is not None:
            return self.kernel(*self._arrays, X)
        return self.all_trees(X) if self._all_trees_faster(len(X)) else self.tree_by_tree(X)

    def _all_trees_faster(self, n: int) -> bool:
        # Costs measured with numpy 2.4 (µs): ~3 + 0.004 per (row, tree) for each level of the
        # all-trees traversal; ~2.3 + 0.0027 per (row, level) for each tree's `apply`.
        n_trees = len(self.trees)
        all_trees = int(self.depths.max()) * (3.0 + 0.004 * n * n_trees)
        tree_by_tree = n_trees * (2.3 + 0.0027 * n * float(self.depths.mean()))
        return all_trees < tree_by_tree

    def all_trees(self, X: np.ndarray) -> np.ndarray:
        """Every (row, tree) pair advanced one level per step: few numpy calls, best for few rows."""
        n, n_trees = len(X), len(self.trees)
        nodes = np.tile(self.roots, n)
        row_starts = np.repeat(np.arange(n, dtype=np.intp) * X.shape[1], n_trees)
        flat = X.ravel()
        for _ in range(int(self.depths.max())):
            x = flat.take(self.feature.take(nodes) + row_starts)
            nodes = self.children.take(2 * nodes + (x > self.threshold.take(nodes)))
        # cumsum adds in tree order, as scikit-learn does (a plain sum would add pairwise)
        leaves = self.value.take(nodes, axis=0).reshape(n, n_trees, *self.value.shape[1:])
        return np.cumsum(leaves, axis=1)[:, -1] / n_trees

    def tree_by_tree(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's own traversal per tree, without its per-tree dispatch: best for many rows."""
        total = np.zeros((len(X), *self.value.shape[1:]))
        for tree, leaf_value in zip(self.trees, self.leaf_values, strict=True):
            total += leaf_value.take(tree.apply(X), axis=0)
        return total / len(self.trees)


def _logistic(estimator: LogisticRegression, positive: int) -> Head:
    """Binary LogisticRegression.predict_proba as scikit-learn 1.9 computes it (`_predict_proba_lr`):
    expit(X @ coef_.T + intercept_) for class 1, and 1 minus that for class 0."""
    coef_t, intercept = estimator.coef_.T, estimator.intercept_

    def head(matrix: np.ndarray) -> np.ndarray:
        probability = expit((matrix @ coef_t + intercept).reshape(-1))
        return probability if positive == 1 else 1 - probability

    return head


_FOREST_CLASSIFIERS = (RandomForestClassifier, ExtraTreesClassifier)
_FOREST_REGRESSORS = (RandomForestRegressor, ExtraTreesRegressor)


def _plain_forest(estimator: Any, kinds: tuple[type, ...] = _FOREST_CLASSIFIERS) -> bool:
    return (type(estimator) in kinds and estimator.n_outputs_ == 1
            and all(e.tree_.n_outputs == 1 for e in estimator.estimators_))


def _binary_logistic(estimator: Any) -> bool:
    coef = getattr(estimator, "coef_", None)
    # scikit-learn < 1.8 took a softmax for multi_class="multinomial", even with two classes
    return (type(estimator) is LogisticRegression and len(estimator.classes_) == 2
            and getattr(estimator, "multi_class", "auto") != "multinomial"
            and isinstance(coef, np.ndarray) and coef.dtype == np.float64 and coef.shape[0] == 1)


def estimator_head(estimator: Any, positive: int, accelerate: bool = True) -> tuple[Head, str]:
    """P(positive) of `estimator` on an encoded matrix, exactly as its `predict_proba` computes it (the
    prediction of a regressor, as `prediction_head`), and a short description of the path taken."""
    if not hasattr(estimator, "predict_proba"):
        return prediction_head(estimator, accelerate)
    if _plain_forest(estimator):
        forest = Forest(estimator, positive, accelerate)
        return forest, f"forest of {len(forest.trees)} trees ({forest.method})"
    if _binary_logistic(estimator):
        return _logistic(estimator, positive), "logistic regression"
    return (lambda matrix: estimator.predict_proba(matrix)[:, positive]), f"{type(estimator).__name__}.predict_proba"


def probabilities_head(estimator: Any, accelerate: bool = True) -> tuple[Head, str]:
    """Every class's probability (rows, classes) in `classes_` order, exactly as `predict_proba` computes
    it: forests by the traversal above, any other classifier by its own `predict_proba`."""
    if _plain_forest(estimator):
        forest = Forest(estimator, None, accelerate)
        return forest, f"forest of {len(forest.trees)} trees, every class ({forest.method})"
    return (lambda matrix: np.asarray(estimator.predict_proba(matrix), dtype=np.float64),
            f"{type(estimator).__name__}.predict_proba")


def prediction_head(estimator: Any, accelerate: bool = True) -> tuple[Head, str]:
    """A regressor's prediction (rows,) exactly as its `predict` computes it: forests by the traversal
    above, any other regressor by its own `predict`."""
    if _plain_forest(estimator, _FOREST_REGRESSORS):
        forest = Forest(estimator, 0, accelerate)
        return forest, f"forest of {len(forest.trees)} trees ({forest.method})"
    return (lambda matrix: np.asarray(estimator.predict(matrix), dtype=np.float64).reshape(len(matrix)),
            f"{type(estimator).__name__}.predict")
