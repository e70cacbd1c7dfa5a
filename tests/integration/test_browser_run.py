"""The run view in a real browser (Debian's Chromium through Playwright), served over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlscope.web.app import create_app
from tests.conftest import Store, copy_of
from tests.live import live_app, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]

XSS = "<img src=x onerror=alert(1)>"
# A function, not an expression: Playwright evaluates bare expressions with eval, which the CSP forbids.
IMAGE_SHOWN = ("() => { const img = document.querySelector('[data-preview-body] img');"
               " return !!img && img.complete && img.naturalWidth > 0; }")


@dataclass(frozen=True)
class Site:
    url: str
    store: Store
    promoted: str
    hostile: str
    plain: str


@pytest.fixture(scope="module")
def site(trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    shared, _ = trained
    store = copy_of(shared, tmp_path_factory.mktemp("run-view"))
    client = store.client()
    promoted = client.get_model_version_by_alias("titanic-survival", "production").run_id
    experiment = client.create_experiment("hostile", artifact_location=str(store.root / "hostile-artifacts"))
    hostile = client.create_run(experiment, run_name=XSS).info.run_id
    client.log_param(hostile, "payload", XSS)
    client.set_tag(hostile, "note", XSS)
    (store.root / "files").mkdir()
    (store.root / "files" / "x.html").write_text(f"<p>{XSS}</p>")
    client.log_artifacts(hostile, str(store.root / "files"), XSS)
    client.set_terminated(hostile)
    plain = client.create_run(experiment, run_name="plain").info.run_id
    client.set_terminated(plain)
    with live_app(create_app(store.settings(mlflow_ui_url="http://mlflow.example:5000"))) as url:
        yield Site(url, store, promoted, hostile, plain)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("dialog", lambda dialog: page.errors.append(f"dialog: {dialog.message}"))
    yield page
    context.close()


def open_run(page: Any, site: Site, run_id: str) -> None:
    page.goto(f"{site.url}/runs/{run_id}")
    page.wait_for_selector("[data-run-view][data-loaded='true']")


def cell(page: Any, table: str, key: str) -> str:
    return page.inner_text(f"[data-{table}] tr[data-key='{key}'] td.value")


def test_trained_run_shows_values_and_previews_artifacts(site: Site, page: Any) -> None:
    run = site.store.client().get_run(site.promoted)
    open_run(page, site, site.promoted)
    assert page.inner_text("[data-run-name]") == run.info.run_name == "logistic-regression"
    assert page.inner_text("[data-status]") == "FINISHED"
    assert page.get_attribute("[data-info] a[data-experiment]", "href") == "/experiments/titanic"
    assert page.get_attribute("[data-explain]", "href") == f"/runs/{site.promoted}/explain"
    assert page.get_attribute("[data-mlflow]", "href") == (
        f"http://mlflow.example:5000/#/experiments/{run.info.experiment_id}/runs/{site.promoted}")
    assert cell(page, "params", "model_type") == run.data.params["model_type"] == "logistic_regression"
    assert cell(page, "metrics", "roc_auc") == f"{run.data.metrics['roc_auc']:.4f}"
    assert page.locator("[data-metrics] tbody tr").count() == len(run.data.metrics)
    assert page.locator("[data-signature] tr[data-direction='input'] td:nth-child(2)").all_inner_texts() == [
        "Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
    assert page.inner_text("[data-versions] [data-alias='production']") == "@production"
    assert page.get_attribute("[data-versions] a", "href") == "/models/titanic-survival"

    page.click("button[data-artifact='roc_curve.png']")
    page.wait_for_function(IMAGE_SHOWN)
    assert page.inner_text("[data-preview-path]") == "roc_curve.png"

    page.click("button[data-artifact='classification_report.json']")
    page.wait_for_selector("[data-preview-body] pre[data-json-pretty]")
    shown = page.inner_text("[data-preview-body] pre")
    downloaded = site.store.client().download_artifacts(site.promoted, "classification_report.json",
                                                        str(site.store.root))
    expected = json.loads(Path(downloaded).read_text())
    assert json.loads(shown) == expected
    assert shown.startswith('{\n  "') and len(shown.splitlines()) > 20  # pretty-printed, one value a line

    page.click("button[data-artifact='predictions.csv']")
    page.wait_for_selector("[data-preview-body] table[data-csv]")
    assert page.locator("[data-preview-body] table[data-csv] th").all_inner_texts() == [
        "PassengerId", "y_true", "probability", "y_pred"]
    assert page.locator("[data-preview-body] table[data-csv] tbody tr").count() == int(run.data.params["test_rows"])

    page.click("button[data-artifact='explanations/shap_importance.png']")
    page.wait_for_function(IMAGE_SHOWN)
    download = page.get_attribute("li:has(> button[data-artifact='roc_curve.png']) a.download", "href")
    assert download == f"/api/runs/{site.promoted}/artifacts/roc_curve.png?download=1"
    screenshot(page, "run")
    assert page.errors == []


def test_hostile_values_render_as_text(site: Site, page: Any) -> None:
    open_run(page, site, site.hostile)
    assert page.inner_text("[data-run-name]") == XSS
    assert cell(page, "params", "payload") == XSS and cell(page, "tags", "note") == XSS
    assert page.inner_text("[data-model-summary]") == "No model logged."
    assert page.locator("[data-signature]").is_hidden() and page.locator("[data-versions]").is_hidden()
    page.click("summary[data-folder]")  # collapse and reopen the folder with the hostile name
    page.click("summary[data-folder]")
    page.click("button.artifact")
    page.wait_for_selector("[data-preview-body] p.muted")
    assert "not shown in the browser" in page.inner_text("[data-preview-body]")
    assert page.locator("main img").count() == 0
    assert page.errors == []


def test_run_without_artifacts_or_model_says_so(site: Site, page: Any) -> None:
    open_run(page, site, site.plain)
    assert page.inner_text("[data-artifacts-note]") == "No artifacts logged."
    assert page.inner_text("[data-model-summary]") == "No model logged."
    assert page.inner_text("[data-params-empty]") == "No parameters logged."
    assert page.errors == []


def test_unknown_run_shows_the_error_banner(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/runs/{'0' * 32}")
    page.wait_for_selector("[data-banner]:not([hidden])")
    assert "not found" in page.inner_text("[data-banner-text]")
