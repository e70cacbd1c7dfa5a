"""Exact interventional Shapley values of linear models, in closed form, at any width.

For a margin m(x) = w . t(x) + c, where t encodes each raw feature into its own block of columns on its
own (mlscope's Pipeline layout, see model_eval.block_layout; a bare estimator has one column per
feature), the game v_x(S) = mean_b m(x on S, b elsewhere) is additive over the features, so the value
of feature g is its own term: phi_g = sum over c in g of w_c (t(x)_c - mean_b t(b)_c), and the base is
the mean margin over the background. No sampling, no enumeration: one matrix product.

It is exact in the model's linear space: the log-odds for logistic classifiers (binary: of the positive
class; multiclass: one output per class), the decision function for other linear classifiers (SVM,
ridge, SGD with other losses), the prediction for regressors. The probability is not linear in the
features; that is another path's job. `LinearPath.build` checks on the background that the estimator's
own decision_function/predict equals t(x) . coef_ + intercept_ before it accepts a model, so a model
whose decision is not that product (a kernel, a link inside predict) is refused with a reason
(`NotLinear`), never explained wrongly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlscope.errors import BadInput
from mlscope.explain.model_eval import block_layout, positive_class_index
from mlscope.explain.tree_models import LOG_ODDS, PREDICTION

DECISION = "decision function"  # linear classifiers without a probability link (SVM, ridge, hinge SGD)
_AGREEMENT = 1e-9  # relative: the estimator's own decision against coef_ . t(x) + intercept_


class NotLinear(ValueError):
    """The model is not a linear model this module can explain exactly; str() is the reason."""


@dataclass
class LinearPath:
    """A linear model as blocks: per raw feature its encoder and the weights of its columns."""

    features: list[str]
    encoders: list[Any]  # per feature: a fitted row-wise transformer, or None for a numeric column as is
    weights: list[np.ndarray]  # per feature: (columns of the feature, outputs)
    intercept: np.ndarray  # (outputs,)
    background_means: list[np.ndarray]  # per feature: mean of its encoded columns over the background
    output: str
    output_names: list[str]

    @classmethod
    def build(cls, model: Any, features: list[str], background: pd.DataFrame) -> LinearPath:
        """Read `model` (a linear estimator, bare or last in mlscope's per-feature Pipeline); raise
        NotLinear with the reason when it cannot be explained exactly in closed form."""
        _require_columns(background, features, "background")
        layout = block_layout(model, features)
        if isinstance(model, Pipeline):
            if layout is None:
                raise NotLinear("the preprocessing is not one row-wise transformer per raw feature")
            estimator = model.steps[-1][1]
            encoders: list[Any] = [dict(layout)[feature] for feature in features]
        else:
            estimator = model
            encoders = [None] * len(features)
            names = getattr(estimator, "feature_names_in_", None)
            if names is not None and list(names) != list(features):
                raise NotLinear("the model was fitted on other columns than the explained features")
        coef, intercept = getattr(estimator, "coef_", None), getattr(estimator, "intercept_", None)
        if hasattr(coef, "toarray"):  # SGD after sparsify()
            coef = coef.toarray()
        if not isinstance(coef, np.ndarray) or intercept is None:
            raise NotLinear(f"{type(estimator).__name__} has no coef_ / intercept_")
        coef = coef.astype(float)
        coef = coef[None, :] if coef.ndim == 1 else coef  # (outputs, columns)
        intercept = np.broadcast_to(np.asarray(intercept, dtype=float).reshape(-1), (coef.shape[0],)).copy()
        output, output_names, sign = _outputs(estimator, coef.shape[0])

        blocks = [_encode(encoder, background[[feature]]) for feature, encoder in zip(features, encoders, strict=True)]
        widths = [block.shape[1] for block in blocks]
        if sum(widths) != coef.shape[1]:
            raise NotLinear(f"{type(estimator).__name__} has {coef.shape[1]} coefficients for {sum(widths)} encoded "
                            f"columns")
        encoded = np.hstack(blocks)
        ours = encoded @ coef.T + intercept
        theirs = _decision(estimator, encoded, coef.shape[0])
        if theirs is None or not np.allclose(ours, theirs, rtol=_AGREEMENT, atol=_AGREEMENT * (1 + np.abs(ours).max())):
            raise NotLinear(f"{type(estimator).__name__}'s decision is not coef_ . x + intercept_")
        if coef.shape[0] == 1 and sign < 0:
            coef, intercept = -coef, -intercept
        splits = np.cumsum(widths)[:-1]
        weights = [w.T.copy() for w in np.split(coef, splits, axis=1)]
        means = [block.mean(axis=0) for block in blocks]
        return cls(list(features), encoders, weights, intercept, means, output, output_names)

    def explain(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(values (n, M, K), base (K,), outputs (n, K), output names): base + values.sum(axis=1) == outputs."""
        _require_columns(rows, self.features, "rows")
        n, k = len(rows), len(self.intercept)
        values = np.empty((n, len(self.features), k))
        for j, (feature, encoder) in enumerate(zip(self.features, self.encoders, strict=True)):
            block = _encode(encoder, rows[[feature]])
            values[:, j, :] = (block - self.background_means[j]) @ self.weights[j]
        base = self.intercept + sum(mean @ weight for mean, weight in zip(self.background_means, self.weights,
                                                                             strict=True))
        outputs = base + values.sum(axis=1)
        return values, np.asarray(base, dtype=float), outputs, list(self.output_names)


def _require_columns(frame: pd.DataFrame, features: list[str], what: str) -> None:
    missing = [feature for feature in features if feature not in frame.columns]
    if missing:
        raise BadInput(f"the {what} lack the feature(s) {', '.join(map(str, missing[:5]))}"
                       + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))


def _encode(encoder: Any, column: pd.DataFrame) -> np.ndarray:
    if encoder is None:
        block = column.to_numpy()
        if not np.issubdtype(block.dtype, np.number):
            raise NotLinear(f"feature {column.columns[0]} is not numeric and the model has no encoder for it")
        return block.astype(float)
    block = encoder.transform(column)
    block = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
    return block.astype(float).reshape(len(column), -1)


def _outputs(estimator: Any, n_outputs: int) -> tuple[str, list[str], int]:
    """What the margin means, a name per output, and the sign that makes a binary margin the positive
    class's."""
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return PREDICTION, ["prediction"] if n_outputs == 1 else [f"prediction {t}" for t in range(n_outputs)], 1
    link = type(estimator).__name__ == "LogisticRegression" or getattr(estimator, "loss", None) in ("log_loss", "log")
    output = LOG_ODDS if link else DECISION
    if n_outputs == 1:
        positive = positive_class_index(estimator)
        return output, [f"{output} of class {classes[positive]}"], 1 if positive == 1 else -1
    return output, [f"{output} of class {c}" for c in classes], 1


def _decision(estimator: Any, encoded: np.ndarray, n_outputs: int) -> np.ndarray | None:
    """The estimator's own linear output on `encoded`, shaped (rows, outputs), or None when it has none."""
    method = getattr(estimator, "decision_function", None) if hasattr(estimator, "classes_") else None
    method = method or getattr(estimator, "predict", None)
    if method is None:
        return None
    names = getattr(estimator, "feature_names_in_", None)
    matrix = pd.DataFrame(encoded, columns=names) if names is not None and len(names) == encoded.shape[1] else encoded
    try:
        out = np.asarray(method(matrix), dtype=float)
    except (ValueError, TypeError):
        return None
    return out.reshape(len(encoded), n_outputs) if out.size == len(encoded) * n_outputs else None
