"""Data for the explanation views: global importance, beeswarm, dependence, waterfall, comparison."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from mlscope.explain.artifacts import plain_value as _plain
from mlscope.explain.shapley import Explanation


def global_importance(explanation: Explanation) -> list[dict[str, Any]]:
    """Features by mean |phi|, largest first."""
    importance = np.abs(explanation.values).mean(axis=0)
    order = np.argsort(-importance, kind="stable")
    return [{"feature": explanation.features[j], "mean_abs_shap": float(importance[j])} for j in order]


def beeswarm(explanation: Explanation) -> dict[str, Any]:
    """Per feature (most important first): each row's value and contribution."""
    return {
        "features": [
            {
                "feature": item["feature"],
                "values": [_plain(v) for v in explanation.data[item["feature"]]],
                "shap": explanation.values[:, explanation.features.index(item["feature"])].tolist(),
            }
            for item in global_importance(explanation)
        ],
        "row_ids": [_plain(r) for r in explanation.row_ids],
    }


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
    contribution and each other feature is summed."""
    j = explanation.features.index(feature)
    n = len(explanation.data)
    if n < 4 or len(explanation.features) < 2:
        return None
    order = np.argsort(_numeric(explanation.data[feature]), kind="stable")
    phi = explanation.values[order, j]
    bins = max(1, n // 10)
    best, best_score = None, -1.0
    for k, other in enumerate(explanation.features):
        if k == j:
            continue
        values = _numeric(explanation.data[other])[order]
        score = 0.0
        for chunk in np.array_split(np.arange(n), bins):
            a, b = phi[chunk], values[chunk]
            ok = ~np.isnan(b)
            if ok.sum() > 2 and np.std(a[ok]) > 0 and np.std(b[ok]) > 0:
                score += abs(float(np.corrcoef(a[ok], b[ok])[0, 1]))
        if score > best_score:
            best, best_score = other, score
    return best


def dependence(explanation: Explanation, feature: str) -> dict[str, Any]:
    """Feature value vs its contribution per row, coloured by its strongest interaction."""
    if feature not in explanation.features:
        raise KeyError(feature)
    j = explanation.features.index(feature)
    partner = strongest_interaction(explanation, feature)
    return {
        "feature": feature,
        "values": [_plain(v) for v in explanation.data[feature]],
        "shap": explanation.values[:, j].tolist(),
        "colour_feature": partner,
        "colour_values": [_plain(v) for v in explanation.data[partner]] if partner else [],
        "row_ids": [_plain(r) for r in explanation.row_ids],
    }


def waterfall(explanation: Explanation, row: int) -> dict[str, Any]:
    """One row's contributions, largest |phi| first, from the base value to the output."""
    values = explanation.values[row]
    order = np.argsort(-np.abs(values), kind="stable")
    return {
        "row_id": _plain(explanation.row_ids[row]),
        "base_value": explanation.base_value,
        "output": float(explanation.outputs[row]),
        "contributions": [
            {"feature": explanation.features[j], "value": _plain(explanation.data.iloc[row, j]),
             "shap": float(values[j])}
            for j in order
        ],
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
