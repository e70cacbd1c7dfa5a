"""The dashboard for regression and multiclass runs trained by the CLI, in Chromium over real HTTP: the
runs view sorts by the task's headline, the compare view shows the task's charts, slices and tests, the
explain view of a regressor explains its prediction; no console error, no request off 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mlscope.web.app import create_app
from tests.conftest import Store, invoke
from tests.live import live_app, offsite_requests

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@dataclass(frozen=True)
class Site:
    url: str
    diabetes: dict[str, str]
    wine: dict[str, str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Store(tmp_path_factory.mktemp("tasks-dashboard"))
    for args in (("train", "--dataset", "diabetes", "--only", "ridge", "--only", "xgboost"),
                 ("train", "--dataset", "wine", "--only", "logistic-regression", "--only", "random-forest")):
        result = invoke(store, *args)
        assert result.exit_code == 0, result.output
    client = store.client()
    runs = {}
    for name in ("diabetes", "wine"):
        found = client.search_runs([client.get_experiment_by_name(name).experiment_id])
        runs[name] = {run.info.run_name: run.info.run_id for run in found}
    with live_app(create_app(store.settings())) as url:
        yield Site(url, runs["diabetes"], runs["wine"])


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    offsite = offsite_requests(context)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    assert offsite == [] and page.errors == []
    context.close()


def open_compare(page: Any, site: Site, experiment: str, run_ids: list[str]) -> None:
    page.goto(f"{site.url}/experiments/{experiment}/compare?runs={','.join(run_ids)}")
    page.wait_for_function("() => !document.querySelector('[data-significance-verdict]').textContent"
                           ".startsWith('Testing')", timeout=60_000)


def test_the_regression_compare_view_speaks_in_errors(site: Site, page: Any) -> None:
    open_compare(page, site, "diabetes", [site.diabetes["ridge"], site.diabetes["xgboost"]])
    assert page.input_value("[data-significance-metric]") == "rmse"
    assert " on RMSE by " in page.inner_text("[data-significance-verdict]")
    tests = page.inner_text("[data-significance-tests]")
    assert "Paired t-test on per-row squared errors" in tests and "Paired bootstrap of the RMSE difference" in tests
    assert page.is_hidden("[data-roc-section]") and page.is_hidden("[data-confusion-section]")
    assert page.is_visible("[data-regression-note]")
    assert page.input_value("[data-fairness-metric]") == "rmse"
    headers = page.locator("[data-fairness] table.parity th[scope='col']").all_inner_texts()
    assert headers == ["run", "mae difference", "rmse difference", "mean residual difference"]


def test_the_multiclass_compare_view_draws_each_class(site: Site, page: Any) -> None:
    open_compare(page, site, "wine", [site.wine["random-forest"], site.wine["logistic-regression"]])
    assert page.input_value("[data-significance-metric]") == "roc_auc"
    tests = page.inner_text("[data-significance-tests]")
    assert "McNemar" in tests and "Paired bootstrap of the macro F1 difference" in tests
    names = page.evaluate("() => document.querySelector('[data-chart-roc]').data.map((trace) => trace.name)")
    assert len(names) == 2 * 3 + 1 and "random-forest: class_2 vs rest (AUC" in " ".join(names)
    matrix = page.locator("[data-confusion] figure").first.locator("table tbody tr")
    assert matrix.count() == 3
    assert page.is_visible("[data-roc-section]") and page.is_hidden("[data-regression-note]")


def test_the_runs_view_sorts_regression_runs_by_rmse_ascending(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/experiments/diabetes")
    page.wait_for_selector("[data-rows] .row.best")
    assert page.input_value("[data-metric]") == "rmse"
    note = page.inner_text("[data-best-note]")
    assert note.startswith("★ best by rmse, ") and "(lower is better)" in note
    assert "metrics.rmse+ASC" in page.url


def test_the_explain_view_of_a_regressor_explains_its_prediction(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/runs/{site.diabetes['ridge']}/explain")
    for name in ("importance", "beeswarm", "waterfall"):
        page.wait_for_selector(f"[data-chart={name}] .main-svg", timeout=60_000)
    meta = page.inner_text("[data-meta]")
    assert "exact Shapley values" in meta and "prediction" in meta


def test_the_explain_view_of_a_multiclass_run_picks_a_class(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/runs/{site.wine['random-forest']}/explain")
    for name in ("importance", "beeswarm", "waterfall"):
        page.wait_for_selector(f"[data-chart={name}] .main-svg", timeout=60_000)
    assert page.is_visible("[data-class-picker]")
    options = page.locator("select[data-class] option").all_inner_texts()
    assert options == ["class_0", "class_1", "class_2"] and page.input_value("select[data-class]") == "class_0"
    assert "probability of class class_0" in page.inner_text("[data-meta]")
    assert page.inner_text("[data-importance-caption]").startswith(
        "mean over rows of the sum over all 3 classes of |SHAP value| (the views below: class class_0)")
    # the row's waterfall is of its predicted class, whatever class the global views show
    page.wait_for_selector("[data-row-class]")
    row_class = page.get_attribute("[data-row-class]", "data-row-class")
    assert page.inner_text("[data-row-class]") == f" · explained class {row_class} (predicted)"
    page.wait_for_function(f"() => document.querySelector('[data-probability]').textContent"
                           f".startsWith('P(class {row_class}) = ')")
    page.select_option("select[data-class]", "class_2")
    page.wait_for_url("**class=class_2**")
    for name in ("importance", "waterfall"):
        page.wait_for_selector(f"[data-chart={name}] .main-svg", timeout=60_000)
    assert page.input_value("select[data-class]") == "class_2"
    assert "probability of class class_2" in page.inner_text("[data-meta]")
    page.wait_for_function("() => document.querySelector('[data-probability]').textContent"
                           ".startsWith('P(class class_2) = ')")


def test_the_registry_page_of_a_regression_model_shows_error_metrics(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/models/diabetes-progression")
    page.wait_for_selector("[data-versions] tr[data-version], table tbody tr")
    headers = page.locator("table th").all_inner_texts()
    assert headers[5:10] == ["rmse", "mae", "r2", "mape", "max_error"], headers
    assert "—" not in page.locator("table tbody tr").first.inner_text().split("\t")[5]
