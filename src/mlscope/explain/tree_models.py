"""Tree ensembles of any library as one set of flat node arrays, for the exact tree Shapley path.

Every supported model (scikit-learn forests and boosting, XGBoost, LightGBM) is read into a
`TreeEnsemble` whose raw output is `base + sum over trees of the value of the leaf each tree sends the
row to`, with one convention for every library: at an internal node a row goes left when
`x[feature] <= threshold`, and a missing value (NaN) goes left when `missing_left[node]`. Libraries
that compare in float32 (scikit-learn trees, XGBoost) set `float32`: the row is cast to float32 before
comparing, and their thresholds are stored so that `<=` on the float32 value gives their answer (XGBoost's
strict `x < t` becomes `x <= nextafter(t, -inf)` in float32). Leaf values are already scaled (learning
rate, 1 / number of trees for averaging forests), so `predict_raw` needs no knowledge of the library.

`extract_ensemble(estimator)` dispatches to the library readers; a model it cannot read exactly raises
`UnsupportedTrees` with a one-line reason (the caller falls back to another Shapley path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PROBABILITY = "probability"  # averaging forests of classifiers: the sum is a class probability
PREDICTION = "prediction"  # regressors: the sum is the prediction
LOG_ODDS = "log-odds"  # boosted classifiers: the sum is the margin, a link (sigmoid/softmax) follows


class UnsupportedTrees(ValueError):
    """The model is not a tree ensemble this module can read exactly; str() is the reason."""


@dataclass
class TreeEnsemble:
    roots: np.ndarray  # int64 (trees,): index of each tree's root node in the node arrays
    left: np.ndarray  # int64 (nodes,): left child, -1 at a leaf
    right: np.ndarray  # int64 (nodes,): right child, -1 at a leaf
    feature: np.ndarray  # int64 (nodes,): column of the estimator's input matrix (-1 at a leaf)
    threshold: np.ndarray  # float64 (nodes,): go left when x <= threshold
    missing_left: np.ndarray  # bool (nodes,): a NaN goes left
    value: np.ndarray  # float64 (nodes, outputs): leaf values, scaled; zero at internal nodes
    base: np.ndarray  # float64 (outputs,): added to the sum over trees
    output: str  # PROBABILITY, PREDICTION or LOG_ODDS
    output_names: list[str]  # one per output column: class labels, or ["prediction"]
    n_columns: int  # width of the estimator's input matrix
    float32: bool = False  # cast rows to float32 before comparing

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def n_outputs(self) -> int:
        return self.value.shape[1]

    def prepare(self, X: np.ndarray) -> np.ndarray:
        """The matrix as the comparisons see it (float32 values held in float64 when `float32`)."""
        X = np.asarray(X, dtype=np.float64)
        return X.astype(np.float32).astype(np.float64) if self.float32 else X

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """(rows, trees) leaf index each tree sends each row to: the reference traversal, in numpy, every
        tree one level per step."""
        X = self.prepare(X)
        rows = np.arange(len(X))[:, None]
        node = np.tile(self.roots.astype(np.int64), (len(X), 1))
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                return node
            x = X[rows, np.where(inner, self.feature[node], 0)]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        """(rows, outputs): base + the sum of each tree's leaf value, tree by tree."""
        leaves = self.leaves(X)
        total = np.tile(self.base, (len(leaves), 1))
        for t in range(self.n_trees):
            total += self.value[leaves[:, t]]
        return total


def concatenate(trees: list[TreeEnsemble]) -> TreeEnsemble:
    """Several single-tree (or smaller) ensembles as one; node indices are shifted, bases added."""
    offsets = np.cumsum([0] + [len(t.left) for t in trees[:-1]])

    def shift(children: np.ndarray, offset: int) -> np.ndarray:
        return np.where(children >= 0, children + offset, -1)

    first = trees[0]
    return TreeEnsemble(
        roots=np.concatenate([t.roots + o for t, o in zip(trees, offsets, strict=True)]).astype(np.int64),
        left=np.concatenate([shift(t.left, o) for t, o in zip(trees, offsets, strict=True)]).astype(np.int64),
        right=np.concatenate([shift(t.right, o) for t, o in zip(trees, offsets, strict=True)]).astype(np.int64),
        feature=np.concatenate([t.feature for t in trees]).astype(np.int64),
        threshold=np.concatenate([t.threshold for t in trees]).astype(np.float64),
        missing_left=np.concatenate([t.missing_left for t in trees]).astype(bool),
        value=np.vstack([t.value for t in trees]).astype(np.float64),
        base=np.sum([t.base for t in trees], axis=0).astype(np.float64),
        output=first.output, output_names=first.output_names, n_columns=first.n_columns, float32=first.float32,
    )


def extract_ensemble(estimator: Any) -> TreeEnsemble:
    """The fitted estimator (not a Pipeline) as a TreeEnsemble, or UnsupportedTrees with the reason."""
    if type(estimator).__name__ == "EncodedLabels" and hasattr(estimator, "estimator_"):
        # mlscope's label wrapper (training/portable.py, pickled by value): the same probability columns
        estimator = estimator.estimator_
    module = type(estimator).__module__
    if module.startswith("xgboost") or module.startswith("lightgbm") or "HistGradientBoosting" in type(estimator).__name__:
        from mlscope.explain import booster_trees

        return booster_trees.extract(estimator)
    if module.startswith("sklearn.ensemble") or module.startswith("sklearn.tree"):
        from mlscope.explain import sklearn_trees

        return sklearn_trees.extract(estimator)
    raise UnsupportedTrees(f"{type(estimator).__name__} is not a tree ensemble")
