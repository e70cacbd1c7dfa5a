"""The explain view of a wide model (60 numeric features) in a real browser: the top 20 features and one
"other 40 features" entry in importance, beeswarm and waterfall (numbers checked against the stored
explanation), ±SE on approximate values, a search box in the dependence picker, and a grouped what-if
form whose hidden fields still count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlscope.explain.shapley import Explanation
from mlscope.tracking.client import allow_model_loading, bind_fluent_api
from mlscope.web.app import create_app
from tests.conftest import Store, mlflow_state_kept
from tests.live import console_errors, live_app, offsite_requests, screenshot
from tests.wide_runs import log_wide_run

pytestmark = [pytest.mark.slow, pytest.mark.browser]
FEATURES = 60
ROWS = 30


class Wide:
    def __init__(self, store: Store, url: str, run_id: str, explanation: Explanation) -> None:
        self.store, self.url, self.run_id, self.explanation = store, url, run_id, explanation

    @property
    def order(self) -> list[str]:
        importance = np.abs(self.explanation.values).mean(axis=0)
        return [self.explanation.features[j] for j in np.argsort(-importance, kind="stable")]


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wide]:
    store = Store(tmp_path_factory.mktemp("wide"))
    with mlflow_state_kept():
        run_id, explanation = log_wide_run(store.settings(), store.client(), store.experiment("wide"), "wide-logreg",
                                           FEATURES, explained=ROWS)
        with live_app(create_app(store.settings())) as url:
            yield Wide(store, url, run_id, explanation)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    page = context.new_page()
    page.errors, page.outside = console_errors(page), offsite_requests(context)
    yield page
    context.close()


def open_view(page: Any, wide: Wide) -> None:
    page.goto(f"{wide.url}/runs/{wide.run_id}/explain")
    for name in ("importance", "beeswarm", "dependence", "waterfall"):
        page.wait_for_selector(f"[data-chart={name}] .main-svg")
    page.wait_for_function("() => document.querySelector('[data-probability]').textContent !== ''")


def plotted(page: Any, name: str) -> list[dict[str, Any]]:
    """The traces Plotly drew in a chart (Plotly keeps them on the chart's element)."""
    return page.evaluate(f"() => document.querySelector('[data-chart={name}]').data")


def test_top_twenty_and_the_rest_summed_with_standard_errors(wide: Wide, page: Any) -> None:
    open_view(page, wide)
    explanation = wide.explanation
    importance = np.abs(explanation.values).mean(axis=0)
    top, rest = wide.order[:20], wide.order[20:]

    bars = plotted(page, "importance")[0]
    assert page.locator("[data-chart=importance] .point").count() == 21
    assert bars["y"][::-1] == [*top, "other 40 features"]
    assert np.allclose(bars["x"][::-1], [*np.sort(importance)[::-1][:20], np.sort(importance)[:40].sum()],
                       atol=1e-12)
    bounds = explanation.standard_errors.mean(axis=0)
    assert np.allclose(bars["error_x"]["array"][0], sum(bounds[explanation.features.index(f)] for f in rest))
    note = page.inner_text("[data-importance-note]")
    assert "top 20 of 60 features; the other 40 summed into one grey bar" in note and "standard error" in note
    meta = page.inner_text("[data-meta]")
    largest = float(np.max(explanation.standard_errors))
    assert f"approximate Shapley values of the {explanation.metadata['model_output']}, ±SE per value" in meta
    assert f"largest SE {float(f'{largest:.2g}')}" in meta
    assert f"{ROWS} rows × 60 features" in meta

    assert page.locator("[data-chart=beeswarm] .point").count() == 21 * ROWS
    ticks = page.evaluate("() => document.querySelector('[data-chart=beeswarm]').layout.yaxis.ticktext")
    assert ticks == [*top, "other 40 features"]
    assert "other 40 features" in page.locator("[data-chart=beeswarm] .ytick text").all_text_contents()

    # The first row's waterfall: its own top 20, one "other 40 features" step, still adding up to P.
    steps = plotted(page, "waterfall")[0]
    assert page.locator("[data-chart=waterfall] .point").count() == 20 + 1 + 2
    assert steps["y"][-2] == "other 40 features"
    row = explanation.values[0]
    mine = [explanation.features[j] for j in np.argsort(-np.abs(row), kind="stable")]
    assert [label.split(" = ")[0] for label in steps["y"][1:21]] == mine[:20]
    assert steps["x"][0] + sum(steps["x"][1:-1]) == pytest.approx(explanation.outputs[0], abs=1e-9)
    other_error = sum(explanation.standard_errors[0, explanation.features.index(f)] for f in mine[20:])
    assert steps["text"][-2].endswith(f"± {float(f'{other_error:.2g}')}")
    assert all("±" in text for text in steps["text"][1:-1])
    assert page.inner_text("[data-probability]") == f"P(class 1) = {explanation.outputs[0]:.3f}"
    screenshot(page, "explain-wide")
    assert page.errors == [] and page.outside == []


def test_the_dependence_picker_searches_features(wide: Wide, page: Any) -> None:
    open_view(page, wide)
    picker = "select[data-dependence-feature] option"
    assert page.is_visible("[data-dependence-search]")
    assert page.locator(picker).all_inner_texts() == wide.order
    first = wide.order[0]
    page.wait_for_function("(f) => document.querySelector('[data-chart=dependence] .xtitle').textContent === f",
                           arg=first)

    needle = "x03" if "x03" not in first else "x04"
    page.fill("[data-dependence-search]", needle)
    found = [name for name in wide.order if needle in name]
    assert len(found) == 10
    assert page.locator(picker).all_inner_texts() == found
    assert page.inner_text("[data-dependence-count]") == "10 of 60 features match"
    page.wait_for_function("(f) => document.querySelector('[data-chart=dependence] .xtitle').textContent === f",
                           arg=found[0])
    # The plotted points are that feature's contributions, with their standard errors as bars.
    j = wide.explanation.features.index(found[0])
    points = plotted(page, "dependence")[0]
    assert np.allclose(points["y"], wide.explanation.values[:, j], atol=1e-12)
    assert np.allclose(points["error_y"]["array"], wide.explanation.standard_errors[:, j])

    page.select_option("select[data-dependence-feature]", found[3])
    page.wait_for_function("(f) => document.querySelector('[data-chart=dependence] .xtitle').textContent === f",
                           arg=found[3])
    page.fill("[data-dependence-search]", "no such feature")
    assert page.locator(picker).count() == 0
    assert page.inner_text("[data-dependence-count]") == "0 of 60 features match"
    page.fill("[data-dependence-search]", "")
    assert page.locator(picker).count() == 60 and page.input_value("select[data-dependence-feature]") == found[3]
    assert page.errors == [] and page.outside == []


def test_the_what_if_form_groups_features_and_counts_the_hidden_ones(wide: Wide, page: Any) -> None:
    open_view(page, wide)
    top, rest = wide.order[:20], wide.order[20:]
    fields = "ls => ls.map((l) => l.dataset.field)"
    assert page.eval_on_selector_all("form[data-what-if] > label[data-field]", fields) == top
    assert page.inner_text("details[data-more-features] summary") == "more features (40)"
    hidden_one = rest[7]
    assert not page.is_visible(f"input[data-feature={hidden_one}]")
    # Every field, the collapsed ones too, starts from the first explained row.
    record = wide.explanation.data.iloc[0]
    for name in (top[0], hidden_one):
        assert float(page.input_value(f"input[data-feature={name}]")) == pytest.approx(record[name])

    page.fill("[data-what-if-search]", hidden_one)
    page.wait_for_selector(f"input[data-feature={hidden_one}]", state="visible")
    assert page.inner_text("[data-what-if-count]") == "1 of 60 features match"
    assert page.locator("form[data-what-if] label[data-field]:visible").count() == 1

    # An edit in the "more features" group is explained live over all 60 fields.
    before = page.inner_text("[data-probability]")
    page.fill(f"input[data-feature={hidden_one}]", "4")
    page.wait_for_function("(b) => document.querySelector('[data-probability]').textContent !== b", arg=before,
                           timeout=60000)
    edited = pd.DataFrame([record.to_dict() | {hidden_one: 4.0}])
    bind_fluent_api(wide.store.settings())
    with allow_model_loading(wide.store.settings()):
        model = mlflow.sklearn.load_model(f"runs:/{wide.run_id}/model")
    assert page.inner_text("[data-probability]") == f"P(class 1) = {model.predict_proba(edited)[0, 1]:.3f}"
    assert "edited" in page.inner_text("[data-waterfall-note]")
    page.fill("[data-what-if-search]", "")
    assert page.locator("form[data-what-if] label[data-field]:visible").count() == 60  # the group stays open
    screenshot(page, "explain-wide-what-if")
    assert page.errors == [] and page.outside == []
