"""Helpers that logged models call at prediction time.

This module is serialized *by value* into every model mlscope logs (cloudpickle), so a registered
model loads and predicts where mlscope is not installed. Keep it free of mlscope imports."""

from __future__ import annotations

import numpy as np
import pandas as pd


def missing_as_nan(X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
    """Categorical input with every kind of missing value (None, NaN, pd.NA) as NaN, so the imputer
    that follows treats a JSON null and a pandas NaN alike."""
    frame = pd.DataFrame(X).astype(object)
    return frame.where(frame.notna(), np.nan)


class EncodedLabels:
    """A classifier fitted on class codes 0..k-1 that answers in the original labels: for estimators that
    accept only integer codes (XGBoost's scikit-learn API). `classes_` holds the labels, in sorted order,
    and `predict_proba` columns follow them."""

    _estimator_type = "classifier"

    def __init__(self, estimator: object) -> None:
        self.estimator = estimator

    def get_params(self, deep: bool = True) -> dict[str, object]:
        params: dict[str, object] = {"estimator": self.estimator}
        if deep and hasattr(self.estimator, "get_params"):
            params.update({f"estimator__{k}": v for k, v in self.estimator.get_params(deep=True).items()})
        return params

    def set_params(self, **params: object) -> EncodedLabels:
        if "estimator" in params:
            self.estimator = params.pop("estimator")
        inner = {k.removeprefix("estimator__"): v for k, v in params.items()}
        if inner:
            self.estimator.set_params(**inner)
        return self

    def __sklearn_tags__(self) -> object:
        tags = self.estimator.__sklearn_tags__()
        tags.estimator_type = "classifier"
        return tags

    def fit(self, X: object, y: object, **fit_params: object) -> EncodedLabels:
        from sklearn.base import clone

        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        self.estimator_ = clone(self.estimator).fit(X, codes, **fit_params)
        return self

    def predict_proba(self, X: object) -> np.ndarray:
        return np.asarray(self.estimator_.predict_proba(X))

    def predict(self, X: object) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.estimator_.feature_importances_
