"""Evaluating a model on many hybrid rows given as integer codes per raw feature.

Two evaluators, same numbers:
- `RawEvaluator` decodes the codes into raw records and calls the model's probability function;
- `BlockEvaluator` applies to an sklearn Pipeline whose first step is a ColumnTransformer with one
  single-column, row-wise transformer per raw feature (the layout mlscope trains). Each feature's
  distinct values are transformed once; a hybrid row's encoded vector is the concatenation of its
  features' encoded blocks, so only the final estimator runs on the hybrids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

# Transformers whose transform() maps each value on its own (no dependence on the other rows).
_ROW_WISE = (SimpleImputer, StandardScaler, OneHotEncoder, FunctionTransformer, MinMaxScaler, RobustScaler)
CHUNK_ROWS = 200_000


class Codebook:
    """Distinct raw values per feature (shared by the rows to explain and the background)."""

    def __init__(self, frames: list[pd.DataFrame], features: list[str]) -> None:
        self.features = features
        self.uniques: list[pd.Index] = []
        self.dtypes = [frames[0][f].dtype for f in features]
        for feature in features:
            values = pd.concat([frame[feature] for frame in frames], ignore_index=True)
            self.uniques.append(pd.Index(pd.unique(values.astype(object)), dtype=object))

    def extend(self, frame: pd.DataFrame) -> Codebook:
        """A codebook with `frame`'s unseen values appended: every existing code keeps its meaning."""
        grown = Codebook.__new__(Codebook)
        grown.features, grown.dtypes, grown.uniques = self.features, self.dtypes, []
        for j, feature in enumerate(self.features):
            codes = self._codes(j, frame[feature])
            new = frame[feature][codes < 0].astype(object)
            fresh = [v for v in pd.unique(new) if not (pd.isna(v) and self._nan_code(j) is not None)]
            grown.uniques.append(self.uniques[j].append(pd.Index(fresh, dtype=object)) if fresh else self.uniques[j])
        return grown

    def _nan_code(self, j: int) -> int | None:
        positions = [i for i, u in enumerate(self.uniques[j]) if not isinstance(u, str) and pd.isna(u)]
        return positions[0] if positions else None

    def _codes(self, j: int, column: pd.Series) -> np.ndarray:
        values = column.astype(object)
        codes = self.uniques[j].get_indexer(values)
        missing = values.isna().to_numpy()
        if missing.any():
            nan_code = self._nan_code(j)
            codes[missing] = -1 if nan_code is None else nan_code
        return codes

    @property
    def cardinalities(self) -> np.ndarray:
        return np.array([len(u) for u in self.uniques], dtype=np.int64)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        columns = []
        for j, feature in enumerate(self.features):
            codes = self._codes(j, frame[feature])
            if (codes < 0).any():
                raise ValueError(f"value of {feature} not in the codebook")
            columns.append(codes)
        return np.stack(columns, axis=1).astype(np.int64)

    def column(self, j: int, codes: np.ndarray) -> pd.Series:
        """Raw values of feature j for the given codes, in the feature's original dtype."""
        column = pd.Series(self.uniques[j].take(codes), dtype=object, name=self.features[j])
        try:
            return column.astype(self.dtypes[j])
        except (TypeError, ValueError):
            return column

    def decode(self, codes: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({f: self.column(j, codes[:, j]) for j, f in enumerate(self.features)})


def positive_class_index(model: Any) -> int:
    classes = list(getattr(model, "classes_", [0, 1]))
    return classes.index(1) if 1 in classes else len(classes) - 1


class RawEvaluator:
    """Any model: decode hybrids to raw records and call `predict(frame) -> probabilities`."""

    name = "raw"

    def __init__(self, codebook: Codebook, predict: Callable[[pd.DataFrame], np.ndarray]) -> None:
        self.codebook, self.predict = codebook, predict

    def extended(self, codebook: Codebook) -> RawEvaluator:
        return RawEvaluator(codebook, self.predict)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        out = np.empty(len(codes))
        for start in range(0, len(codes), CHUNK_ROWS):
            chunk = codes[start:start + CHUNK_ROWS]
            out[start:start + len(chunk)] = self.predict(self.codebook.decode(chunk))
        return out


def _row_wise(transformer: Any) -> bool:
    if isinstance(transformer, Pipeline):
        return all(_row_wise(step) for _, step in transformer.steps)
    return isinstance(transformer, _ROW_WISE)


def block_layout(model: Any, features: list[str]) -> list[tuple[str, Any]] | None:
    """[(feature, fitted transformer)] in output order when the fast path provably applies, else None."""
    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        return None
    pre = model.steps[0][1]
    if not isinstance(pre, ColumnTransformer) or not hasattr(pre, "transformers_"):
        return None
    layout = []
    for name, transformer, columns in pre.transformers_:
        if name == "remainder":
            if transformer != "drop" and len(columns):
                return None
            continue
        if transformer == "drop":
            continue
        cols = list(columns) if not isinstance(columns, str) else [columns]
        if len(cols) != 1 or cols[0] not in features or not _row_wise(transformer):
            return None
        layout.append((cols[0], transformer))
    if sorted(f for f, _ in layout) != sorted(features):
        return None
    return layout


def _forest_proba(forest: Any) -> Callable[[np.ndarray], np.ndarray]:
    """RandomForest/ExtraTrees predict_proba without scikit-learn's per-tree dispatch (joblib call,
    input validation, config context — most of the time for a few thousand rows). Each leaf's class
    proportions are normalised once, exactly as scikit-learn normalises each row that lands in that
    leaf, and trees are summed in the same order: the same numbers (tested to 1e-12)."""
    n_classes = int(forest.n_classes_)
    trees = []
    for estimator in forest.estimators_:
        values = estimator.tree_.value[:, 0, :n_classes].astype(float)
        normalizer = values.sum(axis=1)[:, None]
        normalizer[normalizer == 0.0] = 1.0
        trees.append((estimator.tree_, values / normalizer))

    def proba(matrix: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(matrix, dtype=np.float32)
        total = np.zeros((len(X), n_classes))
        for tree, leaf_proba in trees:
            total += leaf_proba[tree.apply(X)]
        return total / len(trees)

    return proba


def _is_plain_forest(estimator: Any) -> bool:
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    return (type(estimator) in (RandomForestClassifier, ExtraTreesClassifier)
            and getattr(estimator, "n_outputs_", 1) == 1 and hasattr(estimator, "estimators_"))


class BlockEvaluator:
    """mlscope's per-feature pipelines: encode each distinct value once, run only the estimator."""

    name = "feature-blocks"

    def __init__(self, codebook: Codebook, model: Pipeline, layout: list[tuple[str, Any]],
                 previous: BlockEvaluator | None = None) -> None:
        self.model, self.layout = model, layout
        self.estimator = model.steps[-1][1]
        self.positive = positive_class_index(self.estimator)
        self.proba = (previous.proba if previous is not None
                      else _forest_proba(self.estimator) if _is_plain_forest(self.estimator)
                      else self.estimator.predict_proba)
        self.blocks: list[tuple[int, np.ndarray]] = []
        for position, (feature, transformer) in enumerate(layout):
            j = codebook.features.index(feature)
            done = previous.blocks[position][1] if previous is not None else np.zeros((0, 0))
            todo = np.arange(len(done), len(codebook.uniques[j]))
            if len(todo):
                block = transformer.transform(codebook.column(j, todo).to_frame())
                block = block.toarray() if hasattr(block, "toarray") else np.asarray(block, dtype=float)
                done = np.vstack([done, block.astype(float)]) if len(done) else block.astype(float)
            self.blocks.append((j, done))

    def extended(self, codebook: Codebook) -> BlockEvaluator:
        """Encode only the values `codebook` added; the blocks of known values are reused."""
        return BlockEvaluator(codebook, self.model, self.layout, previous=self)

    def encode(self, codes: np.ndarray) -> np.ndarray:
        return np.hstack([block[codes[:, j]] for j, block in self.blocks])

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        out = np.empty(len(codes))
        for start in range(0, len(codes), CHUNK_ROWS):
            chunk = codes[start:start + CHUNK_ROWS]
            out[start:start + len(chunk)] = self.proba(self.encode(chunk))[:, self.positive]
        return out
