"""Nested runs as a collapsible tree in a real browser: runs started with `mlflow.start_run(nested=True)` and a
GridSearchCV whose candidates `mlflow.sklearn.autolog` logged as child runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mlflow.entities import ViewType

from mlscope.web.app import create_app
from tests.conftest import Store
from tests.live import console_errors, live_app, offsite_requests, screenshot
from tests.user_runs import AUTOLOG, NESTED, AutologRuns

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TOP = ["ensemble", "sweep", "baseline", "orphan"]  # roc_auc DESC, children collapsed


@pytest.fixture(scope="module")
def site(user_logged: tuple[Store, AutologRuns]) -> Iterator[str]:
    store, _ = user_logged
    with live_app(create_app(store.settings())) as url:
        yield url


@pytest.fixture(scope="module")
def ids(user_logged: tuple[Store, AutologRuns]) -> dict[str, str]:
    store, _ = user_logged
    client = store.client()
    experiment_id = client.get_experiment_by_name(NESTED).experiment_id
    return {run.info.run_name: run.info.run_id
            for run in client.search_runs([experiment_id], run_view_type=ViewType.ALL)}


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    page = context.new_page()
    page.errors, page.outside = console_errors(page), offsite_requests(page.context)
    yield page
    assert page.errors == [] and page.outside == []
    context.close()


def rows(page: Any) -> list[tuple[str, int]]:
    """(name, depth) of the rows in view, top to bottom."""
    return [(row.query_selector(".name > a:not(.parent-link)").inner_text(), int(row.get_attribute("data-depth")))
            for row in page.query_selector_all("[data-rows] .row")]


def names(page: Any) -> list[str]:
    return [name for name, _ in rows(page)]


def wait_for_names(page: Any, expected: list[str]) -> None:
    page.wait_for_function(
        "(want) => JSON.stringify([...document.querySelectorAll('[data-rows] .row .name > a:not(.parent-link)')]"
        ".map((a) => a.textContent)) === JSON.stringify(want)", arg=expected)


def test_nested_runs_expand_and_collapse_with_the_best_marked(site: str, page: Any, ids: dict[str, str]) -> None:
    """Failed before: every run was listed flat (eight rows, children mixed with their parents)."""
    page.goto(f"{site}/experiments/{NESTED}")
    wait_for_names(page, TOP)
    assert page.inner_text("[data-count]") == "4 top-level run(s)"
    assert page.is_checked("[data-flat]") is False and "view=" not in page.url
    assert page.inner_text("[data-best-note]").startswith("★ best by roc_auc, 0.91 (higher is better)")
    sweep = page.locator(f"[data-rows] .row[data-run-id='{ids['sweep']}']")
    assert sweep.get_attribute("class").split() == ["row", "contains-best"]  # the best run is a collapsed child
    assert sweep.locator(".star").inner_text() == "☆" and sweep.locator("[data-children]").inner_text() == "3"
    assert page.locator(".row.best").count() == 0
    assert page.locator("[data-expand]").count() == 1  # only the sweep has (live) children

    page.click(f"[data-expand='{ids['sweep']}']")
    wait_for_names(page, ["ensemble", "sweep", "trial-2", "trial-3", "trial-1", "baseline", "orphan"])
    assert page.get_attribute(f"[data-expand='{ids['sweep']}']", "aria-expanded") == "true"
    assert rows(page)[2:5] == [("trial-2", 1), ("trial-3", 1), ("trial-1", 1)]
    assert page.locator(".row.best .name > a").inner_text() == "trial-2"
    page.click(f"[data-expand='{ids['trial-3']}']")
    wait_for_names(page, ["ensemble", "sweep", "trial-2", "trial-3", "trial-3-refit", "trial-1", "baseline", "orphan"])
    assert rows(page)[4] == ("trial-3-refit", 2)
    name_x = page.locator(f"[data-run-id='{ids['trial-3-refit']}'] .name > a").bounding_box()["x"]
    assert name_x > page.locator(f"[data-run-id='{ids['sweep']}'] .name > a").bounding_box()["x"] + 20  # indented
    screenshot(page, "runs-nested-tree")
    page.click(f"[data-expand='{ids['trial-3']}']")
    wait_for_names(page, ["ensemble", "sweep", "trial-2", "trial-3", "trial-1", "baseline", "orphan"])
    page.click(f"[data-expand='{ids['sweep']}']")
    wait_for_names(page, TOP)

    page.click("button[data-sort='metrics.roc_auc']")  # sorting: parents by their own values, children collapsed
    wait_for_names(page, ["orphan", "baseline", "sweep", "ensemble"])
    assert "order_by=metrics.roc_auc+ASC" in page.url
    assert page.locator(".row.contains-best .name > a").inner_text() == "sweep"
    page.click(f"[data-expand='{ids['sweep']}']")  # siblings keep the order
    wait_for_names(page, ["orphan", "baseline", "sweep", "trial-1", "trial-3", "trial-2", "ensemble"])


def test_the_flat_list_and_filters_show_every_depth(site: str, page: Any, ids: dict[str, str]) -> None:
    page.goto(f"{site}/experiments/{NESTED}")
    wait_for_names(page, TOP)
    page.check("[data-flat]")
    wait_for_names(page, ["trial-2", "ensemble", "trial-3", "trial-3-refit", "sweep", "baseline", "trial-1", "orphan"])
    assert "view=flat" in page.url and page.inner_text("[data-count]") == "8 run(s)"
    assert page.locator(".row.best .name > a:not(.parent-link)").inner_text() == "trial-2"
    refit = page.locator(f"[data-run-id='{ids['trial-3-refit']}'] .parent-link")
    assert refit.get_attribute("href") == f"/runs/{ids['trial-3']}"
    page.reload()
    wait_for_names(page, ["trial-2", "ensemble", "trial-3", "trial-3-refit", "sweep", "baseline", "trial-1", "orphan"])
    assert page.is_checked("[data-flat]")

    page.uncheck("[data-flat]")
    wait_for_names(page, TOP)
    assert page.is_hidden("[data-tree-note]")
    page.fill("[data-filter]", "metrics.roc_auc > 0.83")
    page.press("[data-filter]", "Enter")
    wait_for_names(page, ["trial-2", "ensemble", "trial-3", "trial-3-refit"])  # matches at any depth, flat
    assert page.is_visible("[data-tree-note]") and page.locator("[data-expand]").count() == 0
    screenshot(page, "runs-nested-filtered")


def test_a_grid_search_expands_to_its_candidates(site: str, page: Any, user_logged) -> None:
    store, autolog = user_logged
    page.goto(f"{site}/experiments/{AUTOLOG}")
    page.wait_for_selector("[data-rows] .row.best")
    assert page.inner_text("[data-count]") == "4 top-level run(s)"
    grid = autolog.runs["grid"]
    assert page.inner_text(f"[data-run-id='{grid}'] [data-children]") == "3"
    page.select_option("[data-metric]", "mean_test_score")  # a child run is now the best
    page.wait_for_selector(f"[data-run-id='{grid}'].contains-best")
    assert page.locator(".row.best").count() == 0
    runs = {run.info.run_id: run for run in store.client().search_runs([autolog.experiment_id])}
    best = max(autolog.grid_children, key=lambda run_id: (runs[run_id].data.metrics["mean_test_score"],
                                                          -runs[run_id].info.start_time))
    page.click(f"[data-expand='{grid}']")
    page.wait_for_selector(f"[data-run-id='{best}'].best")
    children = page.locator("[data-rows] .row[data-depth='1']").evaluate_all("rows => rows.map(r => r.dataset.runId)")
    assert sorted(children) == sorted(autolog.grid_children)
    screenshot(page, "runs-grid-search-children")
