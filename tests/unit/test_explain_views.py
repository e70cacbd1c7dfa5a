"""The explanation views on wide tables (top features one by one, the rest summed, every sum preserved),
standard errors carried through them and through the artifact, and small tables shown as they are."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlscope.explain import artifacts, views
from mlscope.explain.shapley import Explanation, ShapleyExplainer
from tests.wide_runs import seeded_explanation, wide_data, wide_model


@pytest.fixture(scope="module")
def wide() -> Explanation:
    X, y = wide_data(45)
    model = wide_model(X, y)
    return seeded_explanation(model, X.sample(n=10, random_state=1), X.head(6), seeds=3)


@pytest.fixture(scope="module")
def small() -> Explanation:
    X, y = wide_data(6)
    return ShapleyExplainer(wide_model(X, y), X.sample(n=10, random_state=1)).explain(X.head(5))


def test_the_seeded_estimate_is_approximate_with_a_standard_error_per_value(wide: Explanation) -> None:
    assert wide.metadata["exact"] is False
    assert wide.standard_errors is not None and wide.standard_errors.shape == wide.values.shape
    assert (wide.standard_errors > 0).any() and wide.additivity_errors.max() <= 1e-9


def test_importance_shows_the_top_twenty_and_sums_the_rest(wide: Explanation) -> None:
    items = views.global_importance(wide)
    importance = np.abs(wide.values).mean(axis=0)
    expected_top = [wide.features[j] for j in np.argsort(-importance, kind="stable")[:20]]
    assert [i["feature"] for i in items[:20]] == expected_top and all(i["other"] == 0 for i in items[:20])
    other = items[20]
    assert len(items) == 21 and other["feature"] == "other 25 features" and other["other"] == 25
    assert sum(i["mean_abs_shap"] for i in items) == pytest.approx(importance.sum(), abs=1e-12)
    assert other["mean_abs_shap"] == pytest.approx(np.sort(importance)[:25].sum(), abs=1e-12)
    # The bound on the error of mean |phi|: the mean of the feature's standard errors; the rest's: their sum.
    bounds = wide.standard_errors.mean(axis=0)
    first = wide.features.index(items[0]["feature"])
    assert items[0]["standard_error"] == pytest.approx(bounds[first])
    rest = [wide.features.index(f) for f in wide.features if f not in expected_top]
    assert other["standard_error"] == pytest.approx(bounds[rest].sum())


def test_importance_keeps_the_named_features(wide: Explanation) -> None:
    keep = wide.features[:5]
    items = views.global_importance(wide, keep=keep)
    assert {i["feature"] for i in items[:5]} == set(keep) and items[5]["feature"] == "other 40 features"
    assert len(items) == 6
    assert sum(i["mean_abs_shap"] for i in items) == pytest.approx(np.abs(wide.values).mean(axis=0).sum())


def test_beeswarm_sums_the_rest_per_row(wide: Explanation) -> None:
    swarm = views.beeswarm(wide)
    entries = swarm["features"]
    assert len(entries) == 21 and entries[-1]["feature"] == "other 25 features" and entries[-1]["other"] == 25
    assert entries[-1]["values"] == [None] * 6
    totals = np.sum([e["shap"] for e in entries], axis=0)
    assert np.allclose(totals, wide.values.sum(axis=1), atol=1e-12)
    named = [wide.features.index(e["feature"]) for e in entries[:20]]
    rest = [j for j in range(45) if j not in named]
    assert np.allclose(entries[-1]["standard_errors"], wide.standard_errors[:, rest].sum(axis=1))
    assert np.allclose(entries[0]["standard_errors"], wide.standard_errors[:, named[0]])


def test_waterfall_keeps_the_rows_top_twenty_and_still_adds_up(wide: Explanation) -> None:
    for row in range(len(wide.row_ids)):
        step = views.waterfall(wide, row)
        contributions = step["contributions"]
        assert len(contributions) == 21 and contributions[-1]["feature"] == "other 25 features"
        assert contributions[-1]["value"] is None
        magnitude = np.abs(wide.values[row])
        top = [wide.features[j] for j in np.argsort(-magnitude, kind="stable")[:20]]
        assert [c["feature"] for c in contributions[:20]] == top  # this row's own top 20, not the global one
        total = step["base_value"] + sum(c["shap"] for c in contributions)
        assert total == pytest.approx(step["output"], abs=1e-9)
        rest = [j for j in range(45) if wide.features[j] not in top]
        assert contributions[-1]["standard_error"] == pytest.approx(wide.standard_errors[row, rest].sum())
        first = wide.features.index(top[0])
        assert contributions[0]["standard_error"] == pytest.approx(wide.standard_errors[row, first])


def _loop_interaction(explanation: Explanation, feature: str) -> str | None:
    """The dependence colour's definition, one feature and one bin at a time (the view vectorises it)."""
    j = explanation.features.index(feature)
    n = len(explanation.data)
    order = np.argsort(views._numeric(explanation.data[feature]), kind="stable")
    phi = explanation.values[order, j]
    best, best_score = None, -1.0
    for k, other in enumerate(explanation.features):
        if k == j:
            continue
        values = views._numeric(explanation.data[other])[order]
        score = 0.0
        for chunk in np.array_split(np.arange(n), max(1, n // 10)):
            a, b = phi[chunk], values[chunk]
            ok = ~np.isnan(b)
            if ok.sum() > 2 and np.std(a[ok]) > 0 and np.std(b[ok]) > 0:
                score += abs(float(np.corrcoef(a[ok], b[ok])[0, 1]))
        if score > best_score:
            best, best_score = other, score
    return best


def test_the_dependence_colour_is_the_strongest_interaction(wide: Explanation) -> None:
    from mlscope.data.loader import load_titanic
    from mlscope.training.features import build_pipeline
    from mlscope.training.experiments import load_plan, quiet_seed_deprecations

    titanic = load_titanic()
    X = titanic.frame[titanic.features]  # text columns and missing values included
    with quiet_seed_deprecations():
        model = build_pipeline(titanic, load_plan().select()[0].build()).fit(X, titanic.frame["Survived"])
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    X = X.astype(dict.fromkeys(numeric, "float64"))
    explanation = ShapleyExplainer(model, X.sample(n=30, random_state=0)).explain(X.head(120))
    for case in (explanation, wide):
        for feature in case.features:
            assert views.strongest_interaction(case, feature) == _loop_interaction(case, feature), feature


def test_dependence_carries_the_features_standard_errors(wide: Explanation) -> None:
    data = views.dependence(wide, "x007")
    assert np.allclose(data["standard_errors"], wide.standard_errors[:, 7])


@pytest.mark.parametrize(("count", "entries"), [(20, 20), (21, 21), (22, 21)])
def test_nothing_is_summed_up_to_twenty_one_features(count: int, entries: int) -> None:
    X, y = wide_data(count)
    explanation = seeded_explanation(wide_model(X, y), X.head(4), X.head(3), seeds=2)
    items = views.global_importance(explanation)
    assert len(items) == entries and len(views.beeswarm(explanation)["features"]) == entries
    assert len(views.waterfall(explanation, 0)["contributions"]) == entries
    assert (items[-1]["other"] == 2) is (count == 22)


def test_small_exact_explanations_look_as_before(small: Explanation) -> None:
    assert small.metadata["exact"] is True and small.standard_errors is None
    items = views.global_importance(small)
    importance = np.abs(small.values).mean(axis=0)
    assert [i["feature"] for i in items] == [small.features[j] for j in np.argsort(-importance, kind="stable")]
    assert all(i["standard_error"] is None and i["other"] == 0 for i in items)
    assert len(views.waterfall(small, 0)["contributions"]) == 6
    assert views.beeswarm(small)["features"][0]["standard_errors"] is None
    assert views.feature_order(small) == [i["feature"] for i in items]


def test_artifact_round_trip_with_standard_errors(wide: Explanation, tmp_path: Path) -> None:
    background = wide.data.head(3)
    again, _ = artifacts.read(artifacts.write(wide, background, tmp_path))
    assert again.standard_errors is not None
    assert np.array_equal(again.standard_errors, wide.standard_errors)
    assert np.array_equal(again.values, wide.values) and again.metadata["exact"] is False


def test_artifact_round_trip_without_standard_errors(small: Explanation, tmp_path: Path) -> None:
    payload = artifacts.to_json(small, small.data)
    assert payload["standard_errors"] is None
    again, _ = artifacts.from_json(json.loads(json.dumps(payload)))
    assert again.standard_errors is None and np.array_equal(again.values, small.values)


def test_older_artifacts_without_the_key_still_load(small: Explanation) -> None:
    payload = json.loads(json.dumps(artifacts.to_json(small, small.data)))
    del payload["standard_errors"]  # written before standard errors existed
    again, background = artifacts.from_json(payload)
    assert again.standard_errors is None and again.features == small.features
    assert isinstance(background, pd.DataFrame) and views.global_importance(again)[0]["standard_error"] is None


def test_summary_plots_of_a_wide_explanation_stay_small(wide: Explanation, tmp_path: Path) -> None:
    from PIL import Image

    artifacts.plot_importance(wide, "wide", tmp_path / "importance.png")
    artifacts.plot_beeswarm(wide, "wide", tmp_path / "beeswarm.png")
    # 21 rows of bars or dots, not 45: the figures are sized by the entries they draw.
    assert Image.open(tmp_path / "importance.png").height == int(100 * (0.35 * 21 + 1.3))
    assert Image.open(tmp_path / "beeswarm.png").height == int(100 * (0.45 * 21 + 1.4))
