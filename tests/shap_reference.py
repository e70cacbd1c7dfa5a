"""shap's interventional TreeExplainer as the reference the exact tree path is compared with."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import shap


def shap_interventional(model: Any, background: Any, rows: Any) -> np.ndarray:
    """(rows, features, outputs) interventional values of the model's raw output, from shap."""
    explainer = shap.TreeExplainer(model, background, feature_perturbation="interventional")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = np.asarray(explainer.shap_values(rows, check_additivity=False), dtype=float)
    return theirs.reshape(len(rows), np.shape(rows)[1], -1)
