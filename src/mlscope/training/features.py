"""The preprocessing pipeline: one named transformer per raw feature, so every output column
traces back to exactly one raw input column."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from mlscope.data.loader import Dataset
from mlscope.training import portable

cloudpickle.register_pickle_by_value(portable)


def _numeric() -> Pipeline:
    return Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])


def _categorical() -> Pipeline:
    return Pipeline(
        [
            ("missing", FunctionTransformer(portable.missing_as_nan, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )


def build_preprocessor(dataset: Dataset) -> ColumnTransformer:
    """Imputation + scaling for numbers, imputation + one-hot for categories, per raw feature."""
    steps = []
    for column in dataset.features:
        step = _categorical() if column in dataset.categorical else _numeric()
        steps.append((column, step, [column]))
    return ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=False)


# libraries whose scikit-learn classifiers accept only the class codes 0..k-1 as labels
_CODES_ONLY = ("xgboost",)


def _fits_labels(dataset: Dataset, estimator: BaseEstimator) -> BaseEstimator:
    """`estimator`, wrapped to learn class codes when it cannot take the dataset's labels as they are."""
    codes = tuple(range(len(dataset.classes)))
    library = type(estimator).__module__.split(".")[0]
    if dataset.task.classification and dataset.classes != codes and library in _CODES_ONLY:
        return portable.EncodedLabels(estimator)
    return estimator


def build_pipeline(dataset: Dataset, estimator: BaseEstimator) -> Pipeline:
    """The full model that is logged: raw records in, class probabilities (or the prediction) out."""
    return Pipeline([("preprocess", build_preprocessor(dataset)), ("model", _fits_labels(dataset, estimator))])


def raw_features(dataset: Dataset) -> pd.DataFrame:
    """Feature columns typed as the model signature declares them: numbers as float64 (so a
    missing value is representable), categories as text with NaN for missing (the imputers see
    NaN; `None` would pass them as a category of its own)."""
    frame = dataset.X.copy()
    for column in dataset.numeric:
        frame[column] = frame[column].astype("float64")
    for column in dataset.categorical:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    return frame


def output_groups(pipeline: Pipeline) -> list[str]:
    """For each column the preprocessor outputs, the raw feature it came from."""
    preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
    groups: list[str] = []
    for name, transformer, columns in preprocess.transformers_:
        if name == "remainder" or transformer == "drop":
            continue
        width = len(transformer.get_feature_names_out(columns))
        groups.extend([name] * width)
    return groups


def aggregate_by_raw_feature(values: np.ndarray, groups: list[str]) -> dict[str, float]:
    """Sum per-output-column values (importances, |coefficients|) into one value per raw feature."""
    totals: dict[str, float] = {}
    for group, value in zip(groups, values, strict=True):
        totals[group] = totals.get(group, 0.0) + float(value)
    return totals
