"""Wide explanations outside the browser: the dashboard's JSON, the CLI and the prediction API say
"exact" or "±SE" for every value, and sum the features beyond the top 20 into one entry."""

from __future__ import annotations

import re
from collections.abc import Iterator

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlscope.explain import views
from mlscope.explain.service import stored_explanation
from mlscope.explain.live import LIVE_MAX_SECONDS
from mlscope.explain.shapley import Explanation, ShapleyExplainer, output_like
from mlscope.serving.app import build_api, explanation_answers
from mlscope.tracking.client import allow_model_loading, bind_fluent_api
from mlscope.web.app import create_app
from tests.conftest import Store, invoke, mlflow_state_kept
from tests.wide_runs import log_wide_run, seeded_explanation, wide_data, wide_model

pytestmark = pytest.mark.slow
FEATURES = 45


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, dict[str, tuple[str, Explanation]]]]:
    """A wide run with a seeded (±SE) explanation and a small one with the engine's exact explanation."""
    store = Store(tmp_path_factory.mktemp("wide-cli"))
    with mlflow_state_kept():
        experiment = store.experiment("wide")
        logged = {
            "wide": log_wide_run(store.settings(), store.client(), experiment, "wide", FEATURES, explained=8),
            "small": log_wide_run(store.settings(), store.client(), experiment, "small", 6, explained=8, seeds=None),
            "again": log_wide_run(store.settings(), store.client(), experiment, "again", FEATURES, explained=8, seeds=9),
        }
        yield store, logged


def test_the_dashboard_json_of_a_wide_run(runs) -> None:
    store, logged = runs
    run_id, explanation = logged["wide"]
    with mlflow_state_kept():
        http = TestClient(create_app(store.settings()))
        body = http.get(f"/api/runs/{run_id}/explanation").json()
        compared = http.get("/api/explanations/compare", params={"a": run_id, "b": run_id}).json()
    assert body["global"][-1]["feature"] == "other 25 features" and body["global"][-1]["other"] == 25
    assert len(body["global"]) == 21 and len(body["beeswarm"]["features"]) == 21
    assert body["feature_order"] == views.feature_order(explanation) and len(body["feature_order"]) == FEATURES
    meta = body["metadata"]
    assert meta["exact"] is False and meta["method"] == "approximate Shapley values, ±SE per value"
    assert meta["max_standard_error"] == pytest.approx(float(explanation.standard_errors.max()))
    assert body["global"][0]["standard_error"] == pytest.approx(
        explanation.standard_errors[:, explanation.features.index(body["global"][0]["feature"])].mean())
    assert compared["a"]["global"] == compared["b"]["global"] == body["global"]

    small_id, small = logged["small"]
    with mlflow_state_kept():
        plain = TestClient(create_app(store.settings())).get(f"/api/runs/{small_id}/explanation").json()
    assert plain["metadata"]["method"] == "exact Shapley values" and plain["metadata"]["max_standard_error"] is None
    assert [g["feature"] for g in plain["global"]] == views.feature_order(small)  # all six, none summed
    assert all(g["standard_error"] is None and g["other"] == 0 for g in plain["global"])


def table_rows(output: str) -> dict[str, list[str]]:
    """Rich table rows by first cell: {feature: [other cells]}."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]
        if len(cells) >= 2:
            rows[cells[0]] = cells[1:]
    return rows


def test_the_cli_shows_standard_errors_and_sums_the_rest(runs) -> None:
    store, logged = runs
    run_id, explanation = logged["wide"]
    with mlflow_state_kept():
        overview = invoke(store, "explain", run_id)
        one = invoke(store, "explain", run_id, "--row", "2")
    assert overview.exit_code == 0, overview.output
    rows = table_rows(overview.output)
    importance = views.global_importance(explanation)
    assert rows["other 25 features (summed)"] == [f"{importance[-1]['mean_abs_shap']:.4f}",
                                                  f"±{importance[-1]['standard_error']:.2g}"]
    top = importance[0]
    assert rows[top["feature"]] == [f"{top['mean_abs_shap']:.4f}", f"±{top['standard_error']:.2g}"]
    largest = float(explanation.standard_errors.max())
    output = explanation.metadata["model_output"]
    assert f"APPROXIMATE Shapley values of the {output}, ±SE per value (largest SE {largest:.2g})" in overview.output

    assert one.exit_code == 0, one.output
    rows = table_rows(one.output)
    step = views.waterfall(explanation, 2)
    other = step["contributions"][-1]
    assert rows["other 25 features"][:2] == [f"{other['shap']:+.4f}", f"±{other['standard_error']:.2g}"]
    assert sum(1 for name in rows if name in explanation.features) == 20
    assert float(rows["sum"][0]) == pytest.approx(explanation.outputs[2] - explanation.base_value, abs=1e-4)


def test_the_cli_comparison_sums_the_rest_and_keeps_the_challengers_top(runs) -> None:
    store, logged = runs
    (a_id, a), (b_id, b) = logged["wide"], logged["again"]
    with mlflow_state_kept():
        result = invoke(store, "explain", a_id, "--compare", b_id)
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    compared = views.compare(a, b)
    top_a, top_b = compared["rank_champion"][:20], compared["rank_challenger"][:5]
    shown = top_a + [f for f in top_b if f not in top_a]
    assert [name for name in rows if name in a.features] == shown
    rest = [f for f in a.features if f not in shown]
    other = rows[f"other {len(rest)} features (summed)"]
    assert float(other[0]) == pytest.approx(sum(compared["mean_abs_shap_champion"][f] for f in rest), abs=1e-4)
    assert float(other[1]) == pytest.approx(sum(compared["mean_abs_shap_challenger"][f] for f in rest), abs=1e-4)
    leader = compared["rank_champion"][0]
    assert rows[leader][:2] == ["1", f"{compared['mean_abs_shap_champion'][leader]:.4f}"]


def test_the_cli_says_exact_for_exact_values(runs) -> None:
    store, logged = runs
    run_id, explanation = logged["small"]
    with mlflow_state_kept():
        overview = invoke(store, "explain", run_id)
    assert overview.exit_code == 0, overview.output
    rows = table_rows(overview.output)
    assert all(rows[f][-1] == "exact" for f in explanation.features)
    assert not any(name.startswith("other") for name in rows)
    assert f"exact Shapley values of the {explanation.metadata['model_output']}: " in overview.output


def test_api_answers_carry_standard_errors_per_field() -> None:
    X, y = wide_data(FEATURES)
    model = wide_model(X, y)
    explanation = seeded_explanation(model, X.head(8), X.iloc[10:13], seeds=3)
    fields = [name.upper() for name in explanation.features]
    answers = explanation_answers(explanation, fields)
    assert len(answers) == 3
    for r, answer in enumerate(answers):
        assert answer["exact"] is False and answer["model_output"] == explanation.metadata["model_output"]
        assert list(answer["standard_errors"]) == fields
        assert np.allclose(list(answer["standard_errors"].values()), explanation.standard_errors[r])
        assert answer["base_value"] + sum(answer["contributions"].values()) == pytest.approx(
            explanation.outputs[r], abs=1e-9)
    small_X, small_y = wide_data(6)
    small = ShapleyExplainer(wide_model(small_X, small_y), small_X.head(8)).explain(small_X.head(2))
    for answer in explanation_answers(small, small.features):
        assert answer["exact"] is True and answer["standard_errors"] is None


def test_the_served_wide_model_explains_as_the_engine_does(runs) -> None:
    store, logged = runs
    run_id, stored = logged["wide"]
    with mlflow_state_kept():
        bind_fluent_api(store.settings())
        version = mlflow.register_model(f"runs:/{run_id}/model", "wide-model").version
        store.client().set_registered_model_alias("wide-model", "production", version)
        with allow_model_loading(store.settings()):
            model = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
        _, background = stored_explanation(store.client(), run_id)
        X, _ = wide_data(FEATURES)
        record = {name: float(X.iloc[100][name]) for name in X.columns}
        with TestClient(build_api(store.settings(model_name="wide-model"))) as api:
            answer = api.post("/predict", params={"explain": "true"}, json=record).json()
    # The API explains what the stored explanation explained (the probability, sampled: a linear model's
    # closed form is in log-odds), within the live time budget, so the two estimates agree within their errors.
    explainer = ShapleyExplainer(model, background, background_seed=stored.metadata["background_seed"],
                                 output=output_like(stored.metadata), max_seconds=LIVE_MAX_SECONDS)
    expected = explainer.explain(pd.DataFrame([record]))
    explained = answer["explanation"]
    assert explained["exact"] is expected.metadata["exact"] is False
    assert explained["model_output"] == expected.metadata["model_output"] == "probability of class 1"
    assert explained["algorithm"].startswith("stratified antithetic permutation sampling")
    assert explained["additivity_error"] <= 1e-9
    ours = np.array([explained["contributions"][f] for f in expected.features])
    errors = np.array([explained["standard_errors"][f] for f in expected.features])
    assert (errors > 0).all() and expected.standard_errors is not None
    assert (np.abs(ours - expected.values[0]) <= 5 * np.hypot(errors, expected.standard_errors[0]) + 1e-9).all()
    assert answer["probability"] == pytest.approx(float(model.predict_proba(pd.DataFrame([record]))[0, 1]), abs=1e-9)
