"""Data for the explanation views: global importance, beeswarm, dependence, waterfall, comparison.

Wide tables stay readable: importance, beeswarm and waterfall show the TOP_FEATURES largest features one
by one and sum the rest into one "other N features" entry (sums preserved: the entries still add up to
the total importance, each row's contributions, the output). Approximate values carry standard errors
(`Explanation.standard_errors`), passed along per value and bounded for every sum."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from mlscope.explain.artifacts import plain_value as _plain
from mlscope.explain.shapley import Explanation


TOP_FEATURES = 20


def other_label(count: int) -> str:
    return f"other {count} feature{'s' if count != 1 else ''}"


def top_and_rest(scores: np.ndarray, top: int = TOP_FEATURES) -> tuple[list[int], list[int]]:
    """(features shown one by one, largest score first; features summed into one "other" entry). Nothing
    is summed up to top + 1 features: an "other 1 feature" entry would hide a name and save no space."""
    order = [int(j) for j in np.argsort(-np.asarray(scores), kind="stable")]
    if len(order) <= top + 1:
        return order, []
    return order[:top], order[top:]


def _errors(explanation: Explanation) -> np.ndarray | None:
    errors = explanation.standard_errors
    return None if errors is None else np.asarray(errors, dtype=float).reshape(explanation.values.shape)


def global_importance(explanation: Explanation, top: int = TOP_FEATURES,
                      keep: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Features by mean |phi|, largest first: the `top` largest (or the features in `keep`) one by one,
    the rest as one entry holding the sum of their mean |phi|, so the entries add up to the total.

    standard_error (None when the values carry none) bounds the root-mean-square error of mean |phi|:
    ||phi_hat| - |phi|| <= |phi_hat - phi| row by row, and by Minkowski's inequality the RMS error of a
    mean (or a sum) is at most the mean (or sum) of the parts' RMS errors, whatever their correlation.
    So a feature's bound is the mean of its per-row standard errors, and the "other" entry's the sum of
    those bounds."""
    importance = np.abs(explanation.values).mean(axis=0)
    errors = _errors(explanation)
    bounds = errors.mean(axis=0) if errors is not None and len(errors) else None
    if keep is None:
        shown, rest = top_and_rest(importance, top)
    else:
        wanted = set(keep)
        order = [int(j) for j in np.argsort(-importance, kind="stable")]
        shown = [j for j in order if explanation.features[j] in wanted]
        rest = [j for j in order if explanation.features[j] not in wanted]
    items = [{"feature": explanation.features[j], "mean_abs_shap": float(importance[j]),
              "standard_error": None if bounds is None else float(bounds[j]), "other": 0} for j in shown]
    if rest:
        items.append({"feature": other_label(len(rest)), "mean_abs_shap": float(importance[rest].sum()),
                      "standard_error": None if bounds is None else float(bounds[rest].sum()), "other": len(rest)})
    return items


def feature_order(explanation: Explanation) -> list[str]:
    """Every feature, largest mean |phi| first."""
    importance = np.abs(explanation.values).mean(axis=0)
    return [explanation.features[j] for j in np.argsort(-importance, kind="stable")]


def beeswarm(explanation: Explanation, top: int = TOP_FEATURES) -> dict[str, Any]:
    """Per feature (most important first): each row's value and contribution (and its standard error);
    beyond the `top` features, one entry holds each row's summed contribution of all the others (its
    standard error: the sum of theirs, a bound whatever their correlation)."""
    errors = _errors(explanation)
    shown, rest = top_and_rest(np.abs(explanation.values).mean(axis=0), top)
    entries = [
        {
            "feature": explanation.features[j],
            "values": [_plain(v) for v in explanation.data[explanation.features[j]]],
            "shap": explanation.values[:, j].tolist(),
            "standard_errors": None if errors is None else errors[:, j].tolist(),
            "other": 0,
        }
        for j in shown
    ]
    if rest:
        entries.append({
            "feature": other_label(len(rest)),
            "values": [None] * len(explanation.data),
            "shap": explanation.values[:, rest].sum(axis=1).tolist(),
            "standard_errors": None if errors is None else errors[:, rest].sum(axis=1).tolist(),
            "other": len(rest),
        })
    return {"features": entries, "row_ids": [_plain(r) for r in explanation.row_ids]}


def _numeric(column: pd.Series) -> np.ndarray:
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().sum() < column.notna().sum():  # text: order categories by first appearance
        codes, _ = pd.factorize(column.astype(str))
        return codes.astype(float)
    return numeric.to_numpy(dtype=float)


def strongest_interaction(explanation: Explanation, feature: str) -> str | None:
    """The other feature whose value best explains the spread of `feature`'s contributions among
    rows with similar `feature` values (the heuristic shap's dependence plots colour by): rows are
    sorted by the feature, cut into bins of ~10, and within bins the absolute correlation between the
    contribution and each other feature (on the rows where it is present, when at least 3 are and
    neither side is constant) is summed. All other features at once, bin by bin."""
    j = explanation.features.index(feature)
    n = len(explanation.data)
    if n < 4 or len(explanation.features) < 2:
        return None
    order = np.argsort(_numeric(explanation.data[feature]), kind="stable")
    phi = explanation.values[order, j]
    others = [k for k in range(len(explanation.features)) if k != j]
    values = np.column_stack([_numeric(explanation.data[explanation.features[k]]) for k in others])[order]
    scores = np.zeros(len(others))
    for chunk in np.array_split(np.arange(n), max(1, n // 10)):
        a, b = phi[chunk][:, None], values[chunk]
        ok = ~np.isnan(b)
        count = ok.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            da = np.where(ok, a - np.where(ok, a, 0.0).sum(axis=0) / count, 0.0)
            db = np.where(ok, b - np.where(ok, b, 0.0).sum(axis=0) / count, 0.0)
            var_a, var_b = (da ** 2).sum(axis=0), (db ** 2).sum(axis=0)
            correlation = (da * db).sum(axis=0) / np.sqrt(var_a * var_b)
        usable = (count > 2) & (var_a > 0) & (var_b > 0)
        scores += np.where(usable, np.minimum(np.abs(correlation), 1.0), 0.0)
    return explanation.features[others[int(np.argmax(scores))]]


def dependence(explanation: Explanation, feature: str) -> dict[str, Any]:
    """Feature value vs its contribution per row, coloured by its strongest interaction."""
    if feature not in explanation.features:
        raise KeyError(feature)
    j = explanation.features.index(feature)
    partner = strongest_interaction(explanation, feature)
    errors = _errors(explanation)
    return {
        "feature": feature,
        "values": [_plain(v) for v in explanation.data[feature]],
        "shap": explanation.values[:, j].tolist(),
        "standard_errors": None if errors is None else errors[:, j].tolist(),
        "colour_feature": partner,
        "colour_values": [_plain(v) for v in explanation.data[partner]] if partner else [],
        "row_ids": [_plain(r) for r in explanation.row_ids],
    }


def waterfall(explanation: Explanation, row: int, top: int = TOP_FEATURES) -> dict[str, Any]:
    """One row's contributions, largest |phi| first, from the base value to the output: the `top` largest
    one by one, then one step for the sum of all the others, so the steps still add up to the output."""
    values = explanation.values[row]
    errors = _errors(explanation)
    row_errors = None if errors is None else errors[row]
    shown, rest = top_and_rest(np.abs(values), top)
    steps = [
        {"feature": explanation.features[j], "value": _plain(explanation.data[explanation.features[j]].iloc[row]),
         "shap": float(values[j]), "standard_error": None if row_errors is None else float(row_errors[j]), "other": 0}
        for j in shown
    ]
    if rest:
        steps.append({"feature": other_label(len(rest)), "value": None, "shap": float(values[rest].sum()),
                      "standard_error": None if row_errors is None else float(row_errors[rest].sum()),
                      "other": len(rest)})
    return {
        "row_id": _plain(explanation.row_ids[row]),
        "base_value": explanation.base_value,
        "output": float(explanation.outputs[row]),
        "contributions": steps,
    }


def compare(champion: Explanation, challenger: Explanation) -> dict[str, Any]:
    """Rank agreement of global importance and per-row contribution differences (challenger minus
    champion) on the rows both explain, matched by row id."""
    if champion.features != challenger.features:
        raise ValueError("the two explanations cover different features")
    a = np.abs(champion.values).mean(axis=0)
    b = np.abs(challenger.values).mean(axis=0)
    rho = spearmanr(a, b).statistic if len(a) > 1 else 1.0
    tau = kendalltau(a, b).statistic if len(a) > 1 else 1.0
    top = lambda v: [champion.features[j] for j in np.argsort(-v, kind="stable")]  # noqa: E731
    index_b = {rid: i for i, rid in enumerate(challenger.row_ids)}
    pairs = [(i, index_b[rid]) for i, rid in enumerate(champion.row_ids) if rid in index_b]
    rows = []
    for i, k in pairs:
        diff = challenger.values[k] - champion.values[i]
        rows.append({"row_id": _plain(champion.row_ids[i]), "output_difference":
                     float(challenger.outputs[k] - champion.outputs[i]),
                     "shap_difference": dict(zip(champion.features, diff.tolist(), strict=True))})
    diffs = np.array([[r["shap_difference"][f] for f in champion.features] for r in rows]) if rows else np.zeros((0, 1))
    return {
        "features": champion.features,
        "rank_champion": top(a),
        "rank_challenger": top(b),
        "spearman": float(rho),
        "kendall_tau": float(tau),
        "mean_abs_shap_champion": dict(zip(champion.features, a.tolist(), strict=True)),
        "mean_abs_shap_challenger": dict(zip(champion.features, b.tolist(), strict=True)),
        "shared_rows": len(rows),
        "mean_abs_difference": dict(zip(champion.features, np.abs(diffs).mean(axis=0).tolist(), strict=True))
        if rows else {},
        "rows": rows,
    }
