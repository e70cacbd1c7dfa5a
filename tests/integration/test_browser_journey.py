"""A data scientist's way through the dashboard, in one Chromium tab over real HTTP: the demo experiment,
the best run, sorting and filtering, comparing two runs, explaining a passenger, promoting a version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlscope.web.app import create_app
from tests.conftest import Store, copy_of
from tests.live import console_errors, live_app, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    yield context.new_page()
    context.close()


def names(page: Any) -> list[str]:
    return page.locator("[data-rows] .row .name").all_inner_texts()


def test_from_the_experiment_to_a_promoted_model(trained: tuple[Store, object], tmp_path: Path, page: Any) -> None:
    store = copy_of(trained[0], tmp_path / "journey")  # the promotion below must not reach other tests
    errors = console_errors(page)
    with live_app(create_app(store.settings())) as url:
        # The demo experiment: four runs, the best one marked and explained.
        page.goto(url)
        page.click("[data-experiments] a:text-is('titanic')")
        page.wait_for_selector("[data-rows] .row")
        assert len(names(page)) == 4 and page.inner_text("[data-count]") == "4 top-level run(s)"
        assert page.locator(".row.best .name").inner_text() == "logistic-regression"
        assert page.inner_text("[data-best-note]") == ("★ best by roc_auc, 0.8437 (higher is better) · roc_auc by "
                                                       "default: the headline metric, in 4 of 4 finished runs")

        # Sort by name, then filter with MLflow's syntax.
        page.click("button[data-sort='attributes.run_name']")
        page.wait_for_function("() => document.querySelector('[data-rows] .row .name').textContent === 'svm'")
        page.fill("[data-filter]", "params.model_type != 'random_forest'")
        page.press("[data-filter]", "Enter")
        page.wait_for_function("() => document.querySelectorAll('[data-rows] .row').length === 2")
        assert names(page) == ["svm", "logistic-regression"]

        # Compare the two: is the difference real?
        for run_id in page.locator("[data-rows] .row").evaluate_all("rows => rows.map(r => r.dataset.runId)"):
            page.check(f"input[data-select='{run_id}']")
        page.click("[data-compare]")
        page.wait_for_selector("[data-significance]:not([hidden])")
        page.wait_for_function("() => /(beats|tie)/.test(document.querySelector('[data-significance-verdict]')"
                               ".textContent)")
        verdict = page.inner_text("[data-significance-verdict]")
        assert "svm" in verdict and "logistic-regression" in verdict and "95% CI" in verdict
        assert "significant" in verdict
        assert page.locator("[data-significance-tests] li").count() == 3
        page.wait_for_selector("[data-chart-roc] .main-svg")
        screenshot(page, "journey-compare")

        # Open the better run, then its explanation; pick a passenger and ask "what if?".
        page.click("[data-run-list] a:text-is('svm')")
        page.wait_for_selector("[data-params] tr")
        page.click("[data-explain]")
        page.wait_for_selector("[data-chart=importance] .main-svg")
        page.fill("[data-passenger-search]", "allison")
        page.locator("[data-passenger-results] button").first.click()
        page.wait_for_function("() => document.querySelector('[data-probability]').textContent"
                               ".startsWith('P(survived) = ')")
        before = page.inner_text("[data-probability]")
        sex = page.input_value("select[data-feature=Sex]")
        page.select_option("select[data-feature=Sex]", "male" if sex == "female" else "female")
        page.wait_for_function("(b) => document.querySelector('[data-probability]').textContent !== b", arg=before)
        assert page.inner_text("[data-probability]").startswith("P(survived) = ")
        screenshot(page, "journey-explain")

        # Promote svm's version to production, with a reason; the alias moves and the trail says why.
        page.click("header.top a:text-is('Registry')")
        page.click("a:text-is('titanic-survival')")
        page.wait_for_selector("tr[data-version='4']")
        assert page.locator("tr[data-version='3'] [data-alias='production']").count() == 1
        page.click("[data-promote='4']")
        page.fill("[data-alias-input]", "production")
        assert page.inner_text("[data-dialog-sentence]") == "Move @production from v3 to v4?"
        page.fill("[data-reason]", "svm wins McNemar on the holdout")
        page.click("[data-confirm]")
        page.wait_for_selector("tr[data-version='4'] [data-alias='production']")
        assert page.locator("tr[data-version='3'] [data-alias='production']").count() == 0
        assert "svm wins McNemar on the holdout" in page.locator("[data-history-rows] tr").first.inner_text()
        screenshot(page, "journey-registry")
    assert str(store.client().get_model_version_by_alias("titanic-survival", "production").version) == "4"
    assert errors == []
