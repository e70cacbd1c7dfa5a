"""The compare view in a real browser (Debian's Chromium through Playwright), served over real HTTP:
tables checked against MLflow, charts drawn, runs without artifacts explained, run names kept as text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from mlscope.web.app import create_app
from tests.conftest import copy_of
from tests.live import live_app, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]
XSS = "<img src=x onerror=alert(1)>"
CHARTS = ("[data-chart-bars]", "[data-chart-parcoords]", "[data-chart-scatter]", "[data-chart-roc]")


@pytest.fixture(scope="module")
def site(trained) -> Iterator[str]:
    store, _ = trained
    with live_app(create_app(store.settings())) as url:
        yield url


@pytest.fixture(scope="module")
def runs(trained) -> dict[str, str]:
    store, _ = trained
    client = store.client()
    experiment = client.get_experiment_by_name("titanic").experiment_id
    return {run.info.run_name: run.info.run_id for run in client.search_runs([experiment])}


class Watched:
    """A page whose console errors, uncaught exceptions and dialogs are collected."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    yield Watched(context.new_page())
    context.close()


def open_compare(page: Any, url: str, run_ids: list[str]) -> None:
    page.goto(f"{url}/experiments/titanic/compare?runs={','.join(run_ids)}")
    page.wait_for_selector("[data-confusion] figure")
    for chart in CHARTS:
        page.wait_for_selector(f"{chart}.js-plotly-plot .main-svg", state="attached")


def column_of(page: Any, table: str, run_id: str) -> int:
    """The cell index of a run's column in a compare table (0 is the key column)."""
    titles = page.eval_on_selector_all(f"{table} thead th", "cells => cells.map(cell => cell.title)")
    return titles.index(run_id)


def svg_texts(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "nodes => nodes.map(node => node.textContent)")


def bold_runs(page: Any, metric: str, order: list[str]) -> list[str]:
    cells = page.locator(f"[data-metrics] tbody tr[data-key='{metric}'] td")
    return [order[i] for i in range(cells.count()) if cells.nth(i).locator("strong").count()]


def test_four_runs(site: str, watched: Watched, runs: dict[str, str], trained, tmp_path: Path) -> None:
    page = watched.page
    client: MlflowClient = trained[0].client()
    order = ["rf-baseline", "rf-tuned", "logistic-regression", "svm"]
    open_compare(page, site, [runs[name] for name in order])
    assert page.locator("[data-run-list] a").all_inner_texts() == order
    assert page.get_attribute("[data-run-list] a >> nth=1", "href") == f"/runs/{runs['rf-tuned']}"
    assert page.get_attribute("[data-back]", "href") == "/experiments/titanic"
    assert page.locator("[data-significance]").is_hidden()

    params = [client.get_run(runs[name]).data.params for name in order]
    keys = sorted(set().union(*params))
    differing = {key for key in keys if len({p.get(key) for p in params}) > 1}
    rows = page.locator("[data-params] tbody tr")
    assert rows.count() == len(keys)
    assert set(page.eval_on_selector_all("[data-params] tbody tr.differs", "rows => rows.map(r => r.dataset.key)")) \
        == differing
    assert page.inner_text("[data-params] tr[data-key='model_type'] td >> nth=2") == "logistic_regression"
    page.check("[data-diff-only]")
    visible = page.eval_on_selector_all("[data-params] tbody tr",
                                        "rows => rows.filter(r => !r.hidden).map(r => r.dataset.key)")
    assert set(visible) == differing and "dataset" not in visible and "model_type" in visible
    assert page.locator("[data-params] tr[data-key='dataset']").is_hidden()
    page.uncheck("[data-diff-only]")
    assert page.locator("[data-params] tr[data-key='dataset']").is_visible()

    metrics = [client.get_run(runs[name]).data.metrics for name in order]
    for metric, pick in (("accuracy", max), ("roc_auc", max), ("log_loss", min), ("recall", max)):
        best = pick(m[metric] for m in metrics)
        assert bold_runs(page, metric, order) == [name for name, m in zip(order, metrics, strict=True)
                                                  if m[metric] == best], metric
    roc_cell = page.locator("[data-metrics] tr[data-key='roc_auc'] td").nth(order.index("svm"))
    assert roc_cell.inner_text() == f"{metrics[order.index('svm')]['roc_auc']:.4f}"

    for chart in CHARTS:
        assert page.locator(f"{chart}.js-plotly-plot").count() == 1, chart
    assert page.locator("[data-chart-bars] .trace.bars").count() == 4
    # this dashboard's CSP refuses the eval Plotly's WebGL parcoords needs: the same axes are drawn as lines
    assert page.get_attribute("[data-chart-parcoords]", "data-mode") == "lines"
    assert page.locator("[data-chart-parcoords] .scatterlayer .trace").count() == 5  # 4 runs + the colour bar
    assert svg_texts(page, "[data-chart-parcoords] .xtick")[:2] == ["estimator", "model_type"]
    assert page.locator("[data-chart-roc] .scatterlayer .trace").count() == 5  # 4 runs + chance
    legend = svg_texts(page, "[data-chart-roc] .legendtext")
    auc = metrics[order.index("svm")]["roc_auc"]
    assert f"svm (AUC {auc:.3f})" in legend
    assert svg_texts(page, "[data-chart-scatter] .textpoint") != []

    figures = page.locator("[data-confusion] figure")
    assert figures.count() == 4
    for i, name in enumerate(order):
        report = json.loads(Path(client.download_artifacts(runs[name], "classification_report.json",
                                                           str(tmp_path))).read_text())
        cells = figures.nth(i).locator("tbody td").all_inner_texts()
        assert [int(cell) for cell in cells] == [count for row in report["confusion_matrix"] for count in row], name
    assert page.locator("[data-fairness] .fairness-column").count() == 2  # Sex and Pclass
    assert page.locator("[data-fairness] .js-plotly-plot").count() == 2
    assert page.locator("[data-compare-view] .note:visible").count() <= 1  # at most "showing n of m params"
    screenshot(page, "compare-four")
    assert watched.errors == [] and watched.dialogs == []


def test_plotly_parcoords_where_eval_is_allowed(site: str, browser: Any, runs: dict[str, str]) -> None:
    context = browser.new_context(viewport={"width": 1500, "height": 900}, bypass_csp=True)
    try:
        page = context.new_page()
        open_compare(page, site, list(runs.values()))
        assert page.get_attribute("[data-chart-parcoords]", "data-mode") == "parcoords"
        assert page.locator("[data-chart-parcoords] .parcoords").count() == 1
        assert page.locator(".no-webgl").count() == 0
        labels = svg_texts(page, "[data-chart-parcoords] .axis-title")
        assert labels[:2] == ["estimator", "model_type"] and labels[-1] == "roc_auc"
    finally:
        context.close()


def test_two_runs_ask_whether_the_difference_is_real(site: str, watched: Watched, runs: dict[str, str]) -> None:
    page = watched.page
    open_compare(page, site, [runs["svm"], runs["rf-baseline"]])
    verdict = page.locator("[data-significance-verdict]")
    page.wait_for_function("() => { const v = document.querySelector('[data-significance-verdict]');"
                           " return v && !v.textContent.startsWith('Testing'); }", timeout=120000)
    assert "error" not in (verdict.get_attribute("class") or "")
    text = verdict.inner_text()
    assert "svm" in text and "rf-baseline" in text and "significant" in text
    tests = page.locator("[data-significance-tests] li")
    assert tests.count() >= 1 and all(": " in item for item in tests.all_inner_texts())
    assert page.locator("[data-params] tbody tr.differs").count() > 0
    for chart in CHARTS:
        assert page.locator(f"{chart}.js-plotly-plot").count() == 1, chart
    page.select_option("[data-scatter-x]", "n_estimators")
    page.wait_for_function("() => document.querySelectorAll('[data-chart-scatter] .textpoint').length === 1")
    assert "svm" in page.inner_text("[data-scatter-note]")  # svm has no n_estimators
    screenshot(page, "compare-two")
    assert watched.errors == [] and watched.dialogs == []


def test_a_failing_significance_route_stays_in_its_section(site: str, watched: Watched, runs: dict[str, str]) -> None:
    page = watched.page
    page.route("**/api/compare/significance**", lambda route: route.fulfill(
        status=404, content_type="application/json",
        body=json.dumps({"error": {"code": "not_found", "message": "Not Found", "field": None}})))
    open_compare(page, site, [runs["svm"], runs["rf-tuned"]])
    page.wait_for_selector("[data-significance-verdict].error")
    assert "Not Found" in page.inner_text("[data-significance-verdict]")
    assert page.locator("[data-banner]").is_hidden()
    assert page.locator("[data-metrics] tbody tr").count() > 0
    assert [e for e in watched.errors if "404" not in e] == []


def test_runs_without_artifacts_and_hostile_names(trained, runs: dict[str, str], watched: Watched,
                                                  tmp_path: Path) -> None:
    store = copy_of(trained[0], tmp_path / "store")
    client = store.client()
    experiment = client.get_experiment_by_name("titanic").experiment_id
    hostile = client.create_run(experiment, run_name=XSS).info.run_id
    client.log_batch(hostile, metrics=[Metric("roc_auc", 0.5, 0, 0), Metric("accuracy", 0.99, 0, 0)],
                     params=[Param("model_type", XSS), Param("payload", XSS)])
    client.set_terminated(hostile)
    page = watched.page
    with live_app(create_app(store.settings())) as url:
        page.goto(f"{url}/experiments/titanic/compare?runs={runs['svm']},{hostile}")
        page.wait_for_selector("[data-confusion] figure")
        page.wait_for_selector("[data-chart-roc].js-plotly-plot .main-svg", state="attached")
        assert page.locator("[data-run-list] a").all_inner_texts() == ["svm", XSS]
        assert page.inner_text("[data-params] tr.differs[data-key='model_type'] td >> nth=1") == XSS
        assert page.inner_text("[data-params] tr[data-key='payload'] td >> nth=1") == XSS
        assert bold_runs(page, "accuracy", ["svm", XSS]) == [XSS]
        notes = page.locator("[data-compare-view] .note").all_inner_texts()
        assert f"No ROC curve: run '{XSS}' has no roc_curve.json artifact." in notes
        assert f"No confusion matrix: run '{XSS}' has no classification_report.json artifact." in notes
        assert f"No fairness slices: run '{XSS}' has no fairness.json artifact." in notes
        assert page.locator("[data-chart-roc] .scatterlayer .trace").count() == 2  # svm + chance
        assert page.locator("[data-confusion] table").count() == 1
        legend = svg_texts(page, "[data-chart-bars] .legendtext")
        assert XSS in legend
        assert page.locator("main img").count() == 0
        page.wait_for_function("() => !document.querySelector('[data-significance-verdict]').textContent"
                               ".startsWith('Testing')", timeout=120000)
        screenshot(page, "compare-missing-artifacts")
    assert watched.errors == [] and watched.dialogs == []


def test_unknown_run_shows_in_the_banner(site: str, watched: Watched, runs: dict[str, str]) -> None:
    page = watched.page
    page.goto(f"{site}/experiments/titanic/compare?runs={runs['svm']},0123456789abcdef0123456789abcdef")
    page.wait_for_selector("[data-banner]:not([hidden])")
    assert "run(s) not found: 0123456789abcdef0123456789abcdef" in page.inner_text("[data-banner-text]")
    assert page.locator("[data-banner-retry]").is_visible()
