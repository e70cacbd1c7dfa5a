"""The default "best by" metric in a real browser: an autolog experiment (real mlflow.sklearn.autolog runs,
no headline metric) in the experiments list and the runs view."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mlscope.web.app import create_app
from tests.conftest import Store
from tests.live import console_errors, live_app, offsite_requests, screenshot
from tests.user_runs import AUTOLOG, PRIVATE_METRIC, SCORED, AutologRuns

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DEFAULT = "training_roc_auc"


@pytest.fixture(scope="module")
def site(user_logged: tuple[Store, AutologRuns]) -> Iterator[str]:
    store, _ = user_logged
    with live_app(create_app(store.settings())) as url:
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    page = context.new_page()
    page.errors, page.outside = console_errors(page), offsite_requests(page.context)
    yield page
    assert page.errors == [] and page.outside == []
    context.close()


def best_of(store: Store, experiment_id: str, metric: str) -> str:
    runs = [run for run in store.client().search_runs([experiment_id]) if metric in run.data.metrics]
    return min(runs, key=lambda run: (-run.data.metrics[metric], run.info.start_time, run.info.run_id)).info.run_name


def test_the_experiments_list_shows_each_experiments_metric_and_best(site: str, page: Any, user_logged) -> None:
    """Failed before: the autolog row had no best value and no best run (ranked by the absent roc_auc)."""
    store, autolog = user_logged
    page.goto(site + "/experiments")
    row = page.wait_for_selector(f"[data-experiments] tr[data-experiment='{AUTOLOG}']")
    cells = [cell.inner_text() for cell in row.query_selector_all("td")]
    assert cells[3] == DEFAULT and cells[4] != "—" and cells[5] == best_of(store, autolog.experiment_id, DEFAULT)
    assert "the most runs have it" in row.query_selector("[data-best-by]").get_attribute("title")
    scored = [cell.inner_text() for cell in page.query_selector_all(f"tr[data-experiment='{SCORED}'] td")]
    assert scored[3:] == ["roc_auc", "0.8000", "scored-1"]
    screenshot(page, "experiments-best-by")


def test_the_runs_view_ranks_an_autolog_experiment_by_the_metric_most_runs_have(site: str, page: Any,
                                                                                 user_logged) -> None:
    """Failed before: the picker fell back to the alphabetically first key, the private
    GradientBoostingClassifier_score_X_test of one run."""
    store, autolog = user_logged
    page.goto(f"{site}/experiments/{AUTOLOG}")
    page.wait_for_selector("[data-rows] .row.best")
    assert page.input_value("[data-metric]") == DEFAULT
    note = page.inner_text("[data-best-note]")
    assert note.startswith(f"★ best by {DEFAULT}, ") and "(higher is better)" in note
    assert f"{DEFAULT} by default: the most runs have it (4 of 7 finished runs); roc_auc is in none" in note
    assert page.locator(".row.best .name").inner_text() == best_of(store, autolog.experiment_id, DEFAULT)
    columns = page.locator("[data-head] [data-sort^='metrics.']").evaluate_all(
        "nodes => nodes.map(n => n.dataset.sort)")
    assert columns == [f"metrics.{key}" for key in (DEFAULT, "training_accuracy_score", "training_f1_score",
                                                    "training_log_loss", "training_precision_score",
                                                    "training_recall_score")]  # the metrics most runs have
    assert "metric=" not in page.url  # the default is not a choice: it follows the experiment
    assert f"order_by=metrics.{DEFAULT}+DESC" in page.url
    screenshot(page, "runs-best-by-default")

    page.select_option("[data-metric]", PRIVATE_METRIC)  # the user's pick wins
    page.wait_for_function("(m) => document.querySelector('[data-best-note]').textContent.includes(m)",
                           arg=PRIVATE_METRIC)
    assert page.locator(".row.best .name").inner_text() == "boosting"
    assert "by default" not in page.inner_text("[data-best-note]")
    assert f"metric={PRIVATE_METRIC}" in page.url
    page.reload()
    page.wait_for_selector("[data-rows] .row.best")
    assert page.input_value("[data-metric]") == PRIVATE_METRIC
