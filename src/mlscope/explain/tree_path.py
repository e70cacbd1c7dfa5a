"""The exact tree path: a fitted tree model (bare, or inside mlscope's per-feature Pipeline) explained
over its raw features by `tree_shap`, in time polynomial in the trees' size.

Two layouts are understood, both with the raw features as the players:
- a bare tree estimator fitted on the raw features (autolog runs): one numeric column per feature;
- mlscope's training Pipeline `[ColumnTransformer(one row-wise transformer per raw feature), trees]`
  (`model_eval.block_layout`): each feature's transformer makes a block of columns (one-hot: several),
  and the block is one player, so a category's columns come from the explained row or the background
  row together. The values are those of the raw features, not sums of per-column values.

`TreePath.build` reads the trees and does every piece of work that depends only on the background
(its transformed matrix, which way each background row goes at every node, its mean output), so the
per-request `explain` only transforms the rows and runs the walks. The values explain the ensemble's
raw output (`result.output`): a probability for forests of classifiers, the prediction for
regressors, the log-odds (margin) for boosted classifiers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlscope.errors import BadInput
from mlscope.explain import tree_shap
from mlscope.explain.model_eval import block_layout
from mlscope.explain.tree_models import TreeEnsemble, UnsupportedTrees, extract_ensemble


@dataclass
class TreeResult:
    """values[r, j, k]: raw feature j's share of output k for row r; base + values.sum(1) = outputs."""

    features: list[str]
    values: np.ndarray  # (rows, features, outputs)
    base: np.ndarray  # (outputs,): mean raw output over the background
    outputs: np.ndarray  # (rows, outputs): the model's raw output on each row
    output: str  # tree_models.PROBABILITY, PREDICTION or LOG_ODDS
    output_names: list[str]  # one per output: class labels, or ["prediction"]


class TreePath:
    """Exact interventional Shapley values of a tree model's raw output, per raw feature."""

    def __init__(self, model: Any, features: list[str], ensemble: TreeEnsemble, groups: np.ndarray,
                 background: pd.DataFrame, layout: list[tuple[str, Any]] | None) -> None:
        self.model, self.features, self.ensemble, self.groups = model, features, ensemble, groups
        self.layout = layout
        self.columns = list(self.features) if layout is None else None
        if layout is None and hasattr(model, "feature_names_in_"):
            self.columns = [str(c) for c in model.feature_names_in_]
        self._column_index = pd.Index(self.columns if self.columns is not None else [])
        self.prepared = tree_shap.prepare(ensemble, groups, self.matrix(background))

    @classmethod
    def build(cls, model: Any, features: list[str], background: pd.DataFrame) -> TreePath:
        """The path for `model` over `features`, or UnsupportedTrees saying why it does not apply."""
        features = list(features)
        missing = [f for f in features if f not in background.columns]
        if missing:
            raise BadInput(f"background has no column {missing[0]!r}")
        if len(background) == 0:
            raise BadInput("the background has no rows")
        layout = block_layout(model, features)
        if layout is not None:
            ensemble = extract_ensemble(model.steps[-1][1])
            groups = _block_groups(layout, features, background)
            if len(groups) != ensemble.n_columns:
                raise UnsupportedTrees(f"the preprocessing makes {len(groups)} columns but the model reads "
                                       f"{ensemble.n_columns}")
            return cls(model, features, ensemble, groups, background, layout)
        if isinstance(model, Pipeline):
            raise UnsupportedTrees("the Pipeline's preprocessing is not one row-wise transformer per raw feature")
        ensemble = extract_ensemble(model)
        names = [str(c) for c in getattr(model, "feature_names_in_", features)]
        if sorted(names) != sorted(features):
            raise UnsupportedTrees("the model was fitted on other columns than the features explained")
        if ensemble.n_columns != len(features):
            raise UnsupportedTrees(f"the model reads {ensemble.n_columns} columns, not the {len(features)} features")
        text = [f for f in features if not _numeric(background[f])]
        if text:
            raise UnsupportedTrees(f"feature {text[0]!r} is not numeric and there is no preprocessing to encode it")
        groups = np.array([features.index(name) for name in names], dtype=np.int64)
        return cls(model, features, ensemble, groups, background, None)

    def matrix(self, rows: pd.DataFrame) -> np.ndarray:
        """The estimator's input matrix for raw `rows`."""
        missing = [f for f in self.features if f not in rows.columns]
        if missing:
            raise BadInput(f"rows have no column {missing[0]!r}")
        if self.layout is not None:
            encoded = self.model.steps[0][1].transform(rows[self.features])
            encoded = encoded.toarray() if hasattr(encoded, "toarray") else encoded
            return np.asarray(encoded, dtype=np.float64)
        frame = rows if rows.columns.equals(self._column_index) else rows[self.columns]
        try:
            return frame.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            bad = next((c for c in self.columns if not _numeric(frame[c])), self.columns[0])
            raise BadInput(f"feature {bad!r} has a value that is not a number") from None

    def explain(self, rows: pd.DataFrame) -> TreeResult:
        """Exact Shapley values of `rows` against the background given to `build`."""
        values, outputs = tree_shap.shapley_values(self.prepared, self.matrix(rows))
        return TreeResult(features=self.features, values=values, base=self.prepared.base.copy(), outputs=outputs,
                          output=self.ensemble.output, output_names=list(self.ensemble.output_names))


def _numeric(column: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return True
    try:
        pd.to_numeric(column.dropna(), errors="raise")
    except (TypeError, ValueError):
        return False
    return column.dropna().map(lambda v: isinstance(v, int | float | np.number)).all()


def _block_groups(layout: list[tuple[str, Any]], features: list[str], background: pd.DataFrame) -> np.ndarray:
    """Raw feature index of every transformed column, in the ColumnTransformer's output order."""
    groups = []
    for feature, transformer in layout:
        block = transformer.transform(background[[feature]].iloc[:1])
        width = block.shape[1]
        groups += [features.index(feature)] * width
    return np.array(groups, dtype=np.int64)
