"""The runs view in a real browser (Debian's Chromium through Playwright), served over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import mlflow
import pytest

from mlscope.config import Settings

from mlscope.tracking.client import bind_fluent_api
from mlscope.web.app import create_app
from tests.conftest import Store
from tests.live import console_errors, live_app, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def site(trained) -> Iterator[str]:
    store, _ = trained
    with live_app(create_app(store.settings())) as url:
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    yield context.new_page()
    context.close()


def names(page: Any) -> list[str]:
    return page.locator("[data-rows] .row .name").all_inner_texts()


def test_experiments_list_leads_to_the_runs(site: str, page: Any) -> None:
    page.goto(site + "/")
    row = page.wait_for_selector("[data-experiments] tr[data-experiment='titanic']")
    cells = row.query_selector_all("td")
    assert cells[1].inner_text() == "4" and cells[3].inner_text() == "roc_auc" and cells[4].inner_text() == "0.8437"
    assert cells[5].inner_text() == "logistic-regression"
    screenshot(page, "experiments")
    page.click("text=titanic")
    page.wait_for_selector("[data-rows] .row")
    assert page.url.endswith("/experiments/titanic?order_by=metrics.roc_auc+DESC"
                             "&metrics=accuracy%2Cprecision%2Crecall%2Cf1%2Croc_auc%2Clog_loss")


def test_runs_view_sorts_on_the_server_and_marks_the_best(site: str, page: Any) -> None:
    page.goto(site + "/experiments/titanic")
    page.wait_for_selector("[data-rows] .row")
    assert "/experiments/titanic?order_by=metrics.roc_auc+DESC" in page.url
    assert len(names(page)) == 4 and names(page)[0] == "logistic-regression"  # default: best metric first
    assert page.locator(".row.best .name").inner_text() == "logistic-regression"
    assert "best by roc_auc" in page.inner_text("#best-note")
    page.click("button[data-sort='attributes.run_name']")
    page.wait_for_function("() => document.querySelector('[data-rows] .row .name').textContent === 'svm'")
    assert names(page) == ["svm", "rf-tuned", "rf-baseline", "logistic-regression"]
    assert "order_by=attributes.run_name+DESC" in page.url  # the state is in the URL: bookmarkable
    page.click("button[data-sort='attributes.run_name']")
    page.wait_for_function("() => document.querySelector('[data-rows] .row .name').textContent === 'logistic-regression'")
    assert page.get_attribute("button[data-sort='attributes.run_name']", "aria-sort") == "ascending"


def test_filter_and_readable_error(site: str, page: Any) -> None:
    page.goto(site + "/experiments/titanic")
    page.wait_for_selector("[data-rows] .row")
    screenshot(page, "runs")
    page.fill("[data-filter]", "params.model_type = 'random_forest'")
    page.press("[data-filter]", "Enter")
    page.wait_for_function("() => document.querySelectorAll('[data-rows] .row').length === 2")
    assert sorted(names(page)) == ["rf-baseline", "rf-tuned"]
    assert page.inner_text("[data-count]") == "2 run(s)"
    page.fill("[data-filter]", "metrics.accuracy >>> 1")
    page.press("[data-filter]", "Enter")
    page.wait_for_selector("[data-error]:not([hidden])")
    assert page.inner_text("[data-error]").startswith("bad filter")


def test_filter_with_or_between_and_in(site: str, page: Any) -> None:
    errors = console_errors(page)
    page.goto(site + "/experiments/titanic")
    page.wait_for_selector("[data-rows] .row")
    hint = page.inner_text("[data-filter-hint]")
    assert all(word in hint for word in ("OR", "NOT", "parentheses", "BETWEEN", "IN ("))
    page.fill("[data-filter]", "params.model_type = 'svm' OR params.model_type = 'logistic_regression'")
    page.press("[data-filter]", "Enter")
    page.wait_for_function("() => document.querySelectorAll('[data-rows] .row').length === 2")
    assert sorted(names(page)) == ["logistic-regression", "svm"]
    assert page.inner_text("[data-count]") == "2 run(s)"
    assert "filter=params.model_type+%3D+%27svm%27+OR+" in page.url
    # svm has no n_estimators: NOT matches it (the complement), where != would not
    page.fill("[data-filter]", "(params.model_type IN ('random_forest', 'svm') and not params.n_estimators = '200') "
                               "or (params.model_type = 'logistic_regression' and metrics.roc_auc between 0.5 and 1)")
    page.press("[data-filter]", "Enter")
    page.wait_for_function("() => document.querySelector('[data-count]').textContent === '3 run(s)'")
    assert sorted(names(page)) == ["logistic-regression", "rf-baseline", "svm"]
    screenshot(page, "runs-boolean-filter")
    page.fill("[data-filter]", "metrics.accuracy > 0.5 OR (metrics.f1 > 0.5")
    page.press("[data-filter]", "Enter")
    page.wait_for_selector("[data-error]:not([hidden])")
    assert "unbalanced parenthesis: '(' at position 27 is never closed" in page.inner_text("[data-error]")
    assert [error for error in errors if "422" not in error] == []  # only the bad filter's answer


def test_run_names_are_text_not_markup(store: Store, page: Any) -> None:
    bind_fluent_api(store.settings())
    experiment = mlflow.set_experiment("titanic")
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name="<img src=x onerror=alert(1)>"):
        mlflow.log_metric("roc_auc", 0.5)
    with live_app(create_app(store.settings())) as url:
        page.goto(url + "/experiments/titanic")
        page.wait_for_selector("[data-rows] .row")
        assert names(page) == ["<img src=x onerror=alert(1)>"]
        assert page.locator("[data-rows] img").count() == 0


@pytest.fixture(scope="module")
def big_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The run-index benchmark's experiment — 10,000 runs, 6 metrics, 8 params, 3 tags — in a fresh store."""
    from bench.run_index_speed import EXPERIMENT, ensure_store

    root = tmp_path_factory.mktemp("ten-thousand")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ensure_store(uri, root / "artifacts")
    settings = Settings(tracking_uri=uri, registry_uri=uri, experiment_name=EXPERIMENT)
    with live_app(create_app(settings)) as url:
        yield url


def api_names(url: str, order_by: str, offset: int, limit: int) -> list[str]:
    body = httpx.get(f"{url}/api/runs/page", params={"order_by": order_by, "offset": offset, "limit": limit}).json()
    return [run["name"] for run in body["runs"]]


def test_metric_picker_column_chooser_and_selection(site: str, page: Any) -> None:
    errors = console_errors(page)
    page.goto(site + "/experiments/titanic")
    page.wait_for_selector("[data-rows] .row")
    page.select_option("[data-metric]", "log_loss")  # lower is better: inferred from the name
    page.wait_for_function("() => document.querySelector('[data-best-note]').textContent.includes('log_loss')")
    assert page.inner_text("[data-best-note]") == "★ best by log_loss, 0.4423 (lower is better)"
    assert page.locator(".row.best .name").inner_text() == "svm"
    page.select_option("[data-direction]", "max")  # overridden by the user
    page.wait_for_function("() => document.querySelector('[data-best-note]').textContent.includes('higher')")
    assert page.locator(".row.best .name").inner_text() == "rf-baseline"
    assert "metric=log_loss" in page.url and "direction=max" in page.url

    page.click("[data-chooser] summary")
    page.check("input[data-column='params.n_estimators']")
    page.wait_for_selector("button[data-sort='params.n_estimators']")
    page.uncheck("input[data-column='metrics.precision']")
    assert page.locator("button[data-sort='metrics.precision']").count() == 0
    assert "params=n_estimators" in page.url
    page.click("button[data-sort='params.n_estimators']")
    page.wait_for_function("() => document.querySelector('[data-rows] .row .name').textContent.startsWith('rf-')")
    page.reload()  # every choice is in the URL
    page.wait_for_selector("button[data-sort='params.n_estimators'][aria-sort='descending']")
    assert page.locator("button[data-sort='metrics.precision']").count() == 0
    page.wait_for_selector("[data-best-note]:not([hidden])")  # the head is drawn before the first page arrives
    assert page.inner_text("[data-best-note]").startswith("★ best by log_loss")

    assert page.is_disabled("[data-compare]")
    ids = [page.get_attribute(f"[data-rows] .row:nth-child({n})", "data-run-id") for n in (1, 2)]
    for run_id in ids:
        page.check(f"input[data-select='{run_id}']")
    assert page.inner_text("[data-compare]") == "Compare selected (2)"
    assert errors == []
    page.click("[data-compare]")
    page.wait_for_url("**/experiments/titanic/compare?runs=*")
    assert page.url.endswith("runs=" + "%2C".join(ids))


def test_a_store_that_is_down_shows_a_banner_with_retry(page: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = Settings(tracking_uri="http://127.0.0.1:9", registry_uri="http://127.0.0.1:9")
    with live_app(create_app(settings)) as url:
        page.goto(url + "/experiments/titanic")
        page.wait_for_selector("[data-banner]:not([hidden])")
        assert "could not be loaded" in page.inner_text("[data-banner-text]")
        assert page.is_visible("[data-banner-retry]")
        screenshot(page, "banner")
        page.click("[data-banner-retry]")
        page.wait_for_selector("[data-banner]:not([hidden])")
        page.goto(url + "/experiments")
        page.wait_for_selector("[data-banner]:not([hidden])")
        assert page.is_visible("[data-banner-retry]")


def test_ten_thousand_runs_render_only_what_is_in_view_and_sort_on_the_server(big_site: str, page: Any) -> None:
    from bench.run_index_speed import EXPERIMENT

    page.goto(f"{big_site}/experiments/{EXPERIMENT}")
    page.wait_for_selector("[data-rows] .row")
    assert page.inner_text("[data-count]") == "10,000 top-level run(s)"  # no nested runs: the tree is flat
    assert 0 < page.locator("[data-rows] .row").count() < 100  # not 10,000 DOM rows
    assert names(page)[:5] == api_names(big_site, "metrics.roc_auc DESC", 0, 5)

    started = time.perf_counter()
    page.click("button[data-sort='metrics.accuracy']")
    expected = api_names(big_site, "metrics.accuracy DESC", 0, 5)
    page.wait_for_function("(name) => document.querySelector('[data-rows] .row .name').textContent === name",
                           arg=expected[0])
    sorted_in = time.perf_counter() - started
    assert names(page)[:5] == expected

    page.evaluate("document.querySelector('[data-viewport]').scrollTop = 1e9")
    last = api_names(big_site, "metrics.accuracy DESC", 9_995, 5)
    page.wait_for_function("(name) => [...document.querySelectorAll('[data-rows] .row .name')]"
                           ".some(cell => cell.textContent === name)", arg=last[-1])
    assert names(page)[-5:] == last and page.locator("[data-rows] .row").count() < 100
    print(f"sorted 10,000 runs in the browser in {sorted_in * 1000:.0f} ms")
