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

from mlscope.estimators import estimator_head

# Transformers whose transform() maps each value on its own (no dependence on the other rows).
_ROW_WISE = (SimpleImputer, StandardScaler, OneHotEncoder, FunctionTransformer, MinMaxScaler, RobustScaler)
CHUNK_ROWS = 200_000


class Codebook:
    """Distinct raw values per feature, numbered 0.. in order of first appearance; every missing
    value (None, NaN, pd.NA) is one value. Codebooks only grow (`extend`): codes never change."""

    def __init__(self, frames: list[pd.DataFrame], features: list[str]) -> None:
        self.features = features
        self.dtypes = [frames[0][f].dtype for f in features]
        self.uniques: list[pd.Index] = []
        self._lookup: list[dict[Any, int]] = []
        self._nan: list[int | None] = []
        for feature in features:
            self.uniques.append(pd.Index([], dtype=object))
            self._lookup.append({})
            self._nan.append(None)
        for frame in frames:
            self._add(frame)

    @staticmethod
    def _missing(value: Any) -> bool:
        return value is None or value is pd.NA or (isinstance(value, float) and value != value)

    def _add(self, frame: pd.DataFrame) -> None:
        for j, feature in enumerate(self.features):
            fresh = []
            for value in frame[feature].tolist():
                if self._missing(value):
                    if self._nan[j] is None:
                        self._nan[j] = len(self.uniques[j]) + len(fresh)
                        fresh.append(np.nan)
                elif value not in self._lookup[j]:
                    self._lookup[j][value] = len(self.uniques[j]) + len(fresh)
                    fresh.append(value)
            if fresh:
                self.uniques[j] = self.uniques[j].append(pd.Index(fresh, dtype=object))

    def extend(self, frame: pd.DataFrame) -> Codebook:
        """A codebook with `frame`'s unseen values appended: every existing code keeps its meaning."""
        grown = Codebook.__new__(Codebook)
        grown.features, grown.dtypes = self.features, self.dtypes
        grown.uniques = list(self.uniques)
        grown._lookup = [dict(lookup) for lookup in self._lookup]
        grown._nan = list(self._nan)
        grown._add(frame)
        return grown

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        codes = np.empty((len(frame), len(self.features)), dtype=np.int64)
        for j, feature in enumerate(self.features):
            lookup, nan = self._lookup[j], self._nan[j]
            try:
                codes[:, j] = [nan if self._missing(v) else lookup[v] for v in frame[feature].tolist()]
            except (KeyError, TypeError):
                raise ValueError(f"value of {feature} not in the codebook") from None
        return codes

    @property
    def cardinalities(self) -> np.ndarray:
        return np.array([len(u) for u in self.uniques], dtype=np.int64)

    def column(self, j: int, codes: np.ndarray) -> pd.Series:
        """Raw values of feature j for the given codes, in the feature's original dtype."""
        dtype = self.dtypes[j]
        if isinstance(dtype, np.dtype) and dtype.kind == "f":
            # float: take from a typed copy of the values (same numbers, no object round trip)
            try:
                typed = np.asarray(self.uniques[j], dtype=dtype)
            except (TypeError, ValueError):  # a non-number among the values: the general path below
                pass
            else:
                return pd.Series(typed.take(codes), name=self.features[j])
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


def class_index(model: Any, label: Any = None) -> int:
    """The column of `label` in the model's class probabilities; None: the positive class (binary models,
    as ever). ValueError naming the classes for an unknown label."""
    if label is None:
        return positive_class_index(model)
    classes = list(getattr(model, "classes_", []))
    for position, known in enumerate(classes):
        if known == label or str(known) == str(label):
            return position
    raise ValueError(f"unknown class {label!r}; the model's classes are {', '.join(map(str, classes))}")


def output_head(estimator: Any, column: int) -> Callable[[Any], np.ndarray]:
    """The estimator's explained output on an encoded matrix: P(class `column`) for a classifier (the
    fast exact heads where there is one), the prediction for a regressor."""
    if not hasattr(estimator, "predict_proba"):
        return lambda matrix: np.asarray(estimator.predict(matrix), dtype=float).reshape(len(matrix), -1)[:, -1]
    head, _ = estimator_head(estimator, column)
    return head


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


class BlockEvaluator:
    """mlscope's per-feature pipelines: encode each distinct value once, run only the estimator."""

    name = "feature-blocks"

    def __init__(self, codebook: Codebook, model: Pipeline, layout: list[tuple[str, Any]],
                 previous: BlockEvaluator | None = None, column: int | None = None) -> None:
        self.model, self.layout = model, layout
        self.estimator = model.steps[-1][1]
        self.column = previous.column if previous is not None else (
            positive_class_index(self.estimator) if column is None else column)
        if previous is not None:
            self.positive_proba = previous.positive_proba
        else:
            self.positive_proba = output_head(self.estimator, self.column)
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
        if all(len(block) == len(codebook.uniques[j]) for j, block in self.blocks):
            return self
        return BlockEvaluator(codebook, self.model, self.layout, previous=self)

    def encode(self, codes: np.ndarray) -> np.ndarray:
        return np.hstack([block[codes[:, j]] for j, block in self.blocks])

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        out = np.empty(len(codes))
        for start in range(0, len(codes), CHUNK_ROWS):
            chunk = codes[start:start + CHUNK_ROWS]
            out[start:start + len(chunk)] = self.positive_proba(self.encode(chunk))
        return out
