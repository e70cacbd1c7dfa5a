"""Inference for the prediction API: the task's output for batches of raw records — P(class 1) of a
binary classifier, every class's probability of a multiclass one, the prediction of a regressor —
identical to the model's `predict_proba` / `predict`, without scikit-learn's per-call overhead.

mlscope's pipelines (one single-column transformer per raw feature, then an estimator) are compiled
into numpy: imputer statistics, scaler parameters and one-hot lookup tables applied with the same
float operations scikit-learn performs, so the encoded matrix is bit-identical. Forests are evaluated
by a tree traversal over flattened node arrays, binary logistic regression by the same matrix product and
logistic function scikit-learn uses; any other estimator gets its own `predict_proba` / `predict` on the
matrix (see mlscope.estimators). Every other model is served by its own method on a DataFrame. A compiled
predictor is checked against the model on probe records before it is used, and hands any input it cannot
encode to finite numbers (infinities, unhashable categories, empty batches) to the model itself, so
errors match too."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from mlscope import task as tasks
from mlscope.estimators import Head, estimator_head, prediction_head, probabilities_head
from mlscope.explain.model_eval import block_layout, positive_class_index

Columns = Mapping[str, np.ndarray]

_IMPUTER_STRATEGIES = ("median", "mean", "most_frequent", "constant")
_PROBE_TOLERANCE = 1e-12
_UNSEEN = "\x00mlscope-unseen"


@dataclass(frozen=True)
class Output:
    """What the API answers from, per task: read from the whole model on a DataFrame (`read`) or from its
    final estimator on the encoded matrix (`head`); `method` names the model's own method."""

    method: str
    read: Callable[[Any], Callable[[pd.DataFrame], np.ndarray]]
    head: Callable[[Any, Any, bool], tuple[Head, str]]  # (model, estimator, accelerate)


def _positive_reader(model: Any) -> Callable[[pd.DataFrame], np.ndarray]:
    index = positive_class_index(model)
    return lambda frame: np.asarray(model.predict_proba(frame)[:, index], dtype=np.float64)


OUTPUTS: dict[str, Output] = {
    "binary": Output("predict_proba", _positive_reader,
                     lambda model, estimator, accelerate: estimator_head(estimator, positive_class_index(model),
                                                                         accelerate)),
    "multiclass": Output("predict_proba",
                         lambda model: lambda frame: np.asarray(model.predict_proba(frame), dtype=np.float64),
                         lambda model, estimator, accelerate: probabilities_head(estimator, accelerate)),
    "regression": Output("predict",
                         lambda model: lambda frame: np.asarray(model.predict(frame), dtype=np.float64).reshape(-1),
                         lambda model, estimator, accelerate: prediction_head(estimator, accelerate)),
}


class Predictor(ABC):
    """The task's output for batches of raw records given as one array per raw feature."""

    features: list[str]
    numeric: list[str]
    kind: str

    @abstractmethod
    def outputs(self, columns: Columns) -> np.ndarray:
        """float64: (n,) P(class 1) of a binary classifier or (n,) predictions of a regressor, (n, classes)
        probabilities in `classes_` order of a multiclass one. `columns` holds one 1-D array of length n
        per raw feature: float64 with NaN for missing numbers, dtype object with str or None/NaN for
        categories."""

    def positive(self, columns: Columns) -> np.ndarray:
        """P(class 1) of a binary classifier (`outputs` under its older name)."""
        return self.outputs(columns)


def _numbers(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _categories(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = np.nan
    return values


def _column(columns: Columns, feature: str, numeric: bool) -> np.ndarray:
    return _numbers(columns[feature]) if numeric else _categories(columns[feature])


class SklearnPredictor(Predictor):
    """Any model: a DataFrame (numbers float64, categories object with NaN) into its `predict_proba`
    (classifiers) or `predict` (regressors)."""

    def __init__(self, model: Any, features: list[str], numeric: list[str], reason: str,
                 task: tasks.Task = tasks.BINARY) -> None:
        self.model, self.features, self.numeric = model, list(features), list(numeric)
        output = OUTPUTS[task.name]
        self.read = output.read(model)
        self.kind = f"scikit-learn {output.method} ({reason})"

    def frame(self, columns: Columns) -> pd.DataFrame:
        numeric = set(self.numeric)
        return pd.DataFrame({f: _column(columns, f, f in numeric) for f in self.features}, columns=self.features)

    def outputs(self, columns: Columns) -> np.ndarray:
        return self.read(self.frame(columns))


# ---------------------------------------------------------------- preprocessing: one block per raw feature


class _Numeric:
    """Every compiled numeric feature at once: SimpleImputer then StandardScaler, as scikit-learn
    computes them (`X[mask] = statistic`, `X -= mean_`, `X /= scale_`). A feature without an imputer
    gets NaN as statistic, without centring 0.0, without scaling 1.0: each leaves every value as is."""

    def __init__(self, features: list[str], positions: list[int], fill: list[float], mean: list[float],
                 scale: list[float]) -> None:
        self.features, self.positions = features, np.array(positions, dtype=np.intp)
        self.fill, self.mean, self.scale = np.array(fill), np.array(mean), np.array(scale)

    def write(self, columns: Columns, matrix: np.ndarray) -> None:
        raw = np.column_stack([_numbers(columns[f]) for f in self.features])
        values = np.where(np.isnan(raw), self.fill, raw)
        values -= self.mean
        values /= self.scale
        matrix[:, self.positions] = values


class _OneHot:
    """missing_as_nan + SimpleImputer + OneHotEncoder(handle_unknown="ignore") of one feature: a code
    per value (dict lookup, as OneHotEncoder's own), missing values to the statistic's code, anything
    unknown to an all-zero row."""

    def __init__(self, feature: str, start: int, categories: list[Any], statistic: Any) -> None:
        self.feature, self.start, self.width = feature, start, len(categories)
        self.lookup = {category: code for code, category in enumerate(categories)}
        self.unknown = len(categories)
        self.fill = self.lookup.get(statistic, self.unknown)
        self.table = np.vstack([np.eye(self.width), np.zeros((1, self.width))])

    def write(self, columns: Columns, matrix: np.ndarray) -> None:
        values = np.asarray(columns[self.feature], dtype=object)
        codes = np.fromiter(map(self.lookup.get, values, repeat(-1)), dtype=np.intp, count=len(values))
        unmatched = codes < 0
        if unmatched.any():
            codes[unmatched] = np.where(pd.isna(values[unmatched]), self.fill, self.unknown)
        matrix[:, self.start:self.start + self.width] = self.table[codes]


class _SklearnBlock:
    """A feature whose transformer is not compiled: its own `transform`, on its own column."""

    def __init__(self, feature: str, start: int, width: int, transformer: Any, numeric: bool) -> None:
        self.feature, self.start, self.width = feature, start, width
        self.transformer, self.numeric = transformer, numeric

    def write(self, columns: Columns, matrix: np.ndarray) -> None:
        frame = pd.DataFrame({self.feature: _column(columns, self.feature, self.numeric)})
        block = self.transformer.transform(frame)
        block = block.toarray() if hasattr(block, "toarray") else block
        matrix[:, self.start:self.start + self.width] = np.asarray(block, dtype=np.float64)


def _steps(transformer: Any) -> list[Any]:
    return [step for _, step in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]


def _nan_imputer(step: Any) -> bool:
    marker = step.missing_values
    return (type(step) is SimpleImputer and step.strategy in _IMPUTER_STRATEGIES and not step.add_indicator
            and isinstance(marker, float) and math.isnan(marker) and step.statistics_.shape == (1,))


def _statistic(imputer: SimpleImputer) -> float | None:
    """The numeric statistic the imputer fills in, or None when it is not a plain NaN imputer."""
    if not _nan_imputer(imputer) or imputer.statistics_.dtype.kind not in "fiu":
        return None
    fill_dtype = getattr(imputer, "_fill_dtype", imputer.statistics_.dtype)
    fill = float(imputer.statistics_.astype(fill_dtype)[0])
    return None if math.isnan(fill) else fill  # NaN: no observed values, scikit-learn drops the column


def _numeric_chain(transformer: Any) -> tuple[float, float, float] | None:
    """(statistic, mean, scale) for [SimpleImputer] + [StandardScaler] on one column, else None."""
    steps = _steps(transformer)
    imputer = steps.pop(0) if steps and type(steps[0]) is SimpleImputer else None
    scaler = steps.pop(0) if steps and type(steps[0]) is StandardScaler else None
    if steps or (imputer is None and scaler is None):
        return None
    fill = math.nan if imputer is None else _statistic(imputer)
    if fill is None or (scaler is not None and scaler.n_features_in_ != 1):
        return None
    mean = float(scaler.mean_[0]) if scaler is not None and scaler.with_mean else 0.0
    scale = float(scaler.scale_[0]) if scaler is not None and scaler.with_std else 1.0
    return fill, mean, scale


def _missing_as_nan(step: Any) -> bool:
    return (type(step) is FunctionTransformer and getattr(step.func, "__name__", "") == "missing_as_nan"
            and not step.kw_args and not step.validate)


def _plain_onehot(step: Any) -> bool:
    return (type(step) is OneHotEncoder and step.handle_unknown == "ignore" and step.drop is None
            and step.min_frequency is None and step.max_categories is None and step.sparse_output is False
            and np.dtype(step.dtype) == np.float64 and len(step.categories_) == 1
            and step.categories_[0].dtype == object)


def _onehot_chain(feature: str, start: int, transformer: Any) -> _OneHot | None:
    """missing_as_nan + SimpleImputer + OneHotEncoder on one text column, else None."""
    steps = _steps(transformer)
    if len(steps) != 3 or not (_missing_as_nan(steps[0]) and _nan_imputer(steps[1]) and _plain_onehot(steps[2])):
        return None
    categories = list(steps[2].categories_[0])
    statistic = steps[1].statistics_[0]
    try:
        distinct = len(set(categories)) == len(categories)
    except TypeError:
        return None
    if not distinct or pd.isna(np.array(categories + [statistic], dtype=object)).any():
        return None
    return _OneHot(feature, start, categories, statistic)


class _Encoder:
    """Raw columns to the matrix the ColumnTransformer would output."""

    def __init__(self, width: int, blocks: list[_Numeric | _OneHot | _SklearnBlock]) -> None:
        self.width, self.blocks = width, blocks

    def __call__(self, columns: Columns, n: int) -> np.ndarray:
        matrix = np.empty((n, self.width))
        for block in self.blocks:
            block.write(columns, matrix)
        return matrix


def _block_width(feature: str, transformer: Any) -> int:
    return len(transformer.get_feature_names_out([feature]))


def _encoder(layout: list[tuple[str, Any]], numeric: set[str]) -> tuple[_Encoder, list[str]]:
    """The compiled encoder and the features left to scikit-learn's transformers."""
    numbers: list[tuple[str, int, float, float, float]] = []
    blocks: list[_Numeric | _OneHot | _SklearnBlock] = []
    delegated: list[str] = []
    start = 0
    for feature, transformer in layout:
        chain = _numeric_chain(transformer) if feature in numeric else None
        onehot = None if feature in numeric else _onehot_chain(feature, start, transformer)
        if chain is not None:
            numbers.append((feature, start, *chain))
            width = 1
        elif onehot is not None:
            blocks.append(onehot)
            width = onehot.width
        else:
            width = _block_width(feature, transformer)
            blocks.append(_SklearnBlock(feature, start, width, transformer, feature in numeric))
            delegated.append(feature)
        start += width
    if numbers:
        blocks.insert(0, _Numeric(*(list(field) for field in zip(*numbers, strict=True))))
    return _Encoder(start, blocks), delegated


# ---------------------------------------------------------------- the compiled predictor


class CompiledPredictor(Predictor):
    """Encoder + estimator head; inputs it cannot encode to finite numbers go to `fallback`."""

    def __init__(self, encoder: _Encoder, head: Head, fallback: SklearnPredictor, kind: str) -> None:
        self.encoder, self.head, self.fallback, self.kind = encoder, head, fallback, kind
        self.features, self.numeric = fallback.features, fallback.numeric

    def outputs(self, columns: Columns) -> np.ndarray:
        n = len(columns[self.features[0]])
        try:
            matrix = self.encoder(columns, n) if n else None
        except TypeError:  # an unhashable category: let scikit-learn answer (or raise) as it would
            matrix = None
        if matrix is None or not np.isfinite(matrix).all():
            return self.fallback.outputs(columns)
        return self.head(matrix)


def _unfit(model: Any, layout: list[tuple[str, Any]] | None) -> str | None:
    """Why the compiled path does not apply to `model`, or None."""
    if layout is None:
        return "not a Pipeline of one row-wise transformer per raw feature and an estimator"
    preprocessor = model.steps[0][1]
    if getattr(preprocessor, "sparse_output_", False):
        return "the preprocessor outputs a sparse matrix"
    if getattr(preprocessor, "transformer_weights", None):
        return "the preprocessor weights its transformers"
    if hasattr(model.steps[-1][1], "feature_names_in_"):
        return "the estimator takes a DataFrame"
    return None


def _probe(predictor: CompiledPredictor) -> dict[str, np.ndarray]:
    """Records that visit every compiled code path: missing, unseen, every category, typical numbers."""
    numeric = set(predictor.numeric)
    candidates: dict[str, list[Any]] = {}
    for feature in predictor.features:
        if feature in numeric:
            candidates[feature] = [0.0, 1.0, -1.0, 3.5, 28.0, 1e3, 1e6]
        else:
            candidates[feature] = [_UNSEEN, "", "0"]
    for block in predictor.encoder.blocks:
        if isinstance(block, _Numeric):
            for feature, fill, mean in zip(block.features, block.fill, block.mean, strict=True):
                candidates[feature] += [math.nan, fill, mean] if not math.isnan(fill) else [mean]
        elif isinstance(block, _OneHot):
            candidates[block.feature] = [*block.lookup, None, math.nan, *candidates[block.feature]]
    rows = max(len(values) for values in candidates.values()) * 2
    columns: dict[str, np.ndarray] = {}
    for i, feature in enumerate(predictor.features):
        values = candidates[feature]
        picked = [values[(j * (i + 1) + i) % len(values)] for j in range(rows)]
        columns[feature] = np.array(picked, dtype=np.float64 if feature in numeric else object)
    return columns


def _self_check(predictor: CompiledPredictor) -> str | None:
    """None when the compiled path equals the model on the probe records, else why not."""
    probe = _probe(predictor)
    try:
        expected = predictor.fallback.outputs(probe)
    except Exception as exc:  # noqa: BLE001 - a transformer that rejects the probe: nothing to compare
        return f"self-check not possible: {type(exc).__name__}"
    try:
        got = predictor.outputs(probe)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the model itself still answers
        return f"self-check failed: {type(exc).__name__}: {exc}"
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=0.0, atol=_PROBE_TOLERANCE):
        return "self-check failed: compiled answers differ from the model's"
    return None


def _compile(model: Any, layout: list[tuple[str, Any]], features: list[str], numeric: list[str],
             task: tasks.Task, accelerate: bool) -> CompiledPredictor:
    encoder, delegated = _encoder(layout, set(numeric))
    estimator = model.steps[-1][1]
    if getattr(estimator, "n_features_in_", encoder.width) != encoder.width:
        raise ValueError("the estimator's input width differs from the preprocessor's output")
    head, head_kind = OUTPUTS[task.name].head(model, estimator, accelerate)
    encoders = f"{len(features) - len(delegated)} per-feature encoders"
    if delegated:
        encoders += f" + scikit-learn transformers for {', '.join(delegated)}"
    fallback = SklearnPredictor(model, features, numeric, "for input the compiled path cannot encode", task)
    return CompiledPredictor(encoder, head, fallback, f"compiled: {encoders} + {head_kind}")


def compile_predictor(model: Any, features: list[str], numeric: list[str], *, task: tasks.Task | None = None,
                      accelerate: bool = True) -> Predictor:
    """The fastest exact predictor of `task`'s output (default: the model's task, else binary) for
    `model`: compiled when its pipeline is one mlscope builds (or close enough to be verified), else the
    model's own `predict_proba` / `predict`. `accelerate` allows the numba forest kernel when numba is
    importable."""
    task = task or tasks.infer_from_model(model) or tasks.BINARY
    layout = block_layout(model, features)
    reason = _unfit(model, layout)
    if reason is None:
        try:
            predictor = _compile(model, layout, features, numeric, task, accelerate)
        except (AttributeError, TypeError, ValueError, NotImplementedError) as exc:
            reason = f"cannot compile: {exc}"
        else:
            reason = _self_check(predictor)
            if reason is None:
                return predictor
    return SklearnPredictor(model, features, numeric, reason, task)
