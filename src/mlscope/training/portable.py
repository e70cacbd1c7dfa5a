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
