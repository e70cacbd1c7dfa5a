"""The Production view of a registered model, over real HTTP and in Chromium: two Titanic versions trained
by the CLI into a real MLflow store, a prediction log with feedback in the shared Parquet layout written
from the versions' real outputs (the served one's traffic drifted: more third class, older passengers),
the report computed from them by `mlscope.monitoring.report`; a regressor and a multiclass classifier
likewise. The page must show the drift, the explanation shift and the live metrics, keep the window in
the URL, never call off 127.0.0.1 and log no console error."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlscope.config import Settings
from mlscope.data.loader import load_demo
from mlscope.web.app import create_app
from tests.conftest import Store, copy_of, invoke, mlflow_state_kept
from tests.live import console_errors, live_app, offsite_requests, screenshot
from tests.production_log import Logged, spread, write_log, write_rows

pytestmark = pytest.mark.slow
MODEL = "titanic-survival"
REPORT_KEYS = {"model", "window", "since", "until", "generated_at", "task", "served", "status", "problems", "traffic",
               "versions", "drift", "explanation_drift"}
DRIFT_KEYS = {"feature", "kind", "psi", "test", "statistic", "p_value", "wasserstein", "missing_reference",
              "missing_live", "status"}


@dataclass(frozen=True)
class Site:
    store: Store
    settings: Settings
    production: str
    other: str
    logged: Logged
    test_metrics: dict[str, float]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Store(tmp_path_factory.mktemp("production-view"))
    with mlflow_state_kept():
        result = invoke(store, "train", "--only", "rf-baseline", "--only", "logistic-regression", "--promote")
        assert result.exit_code == 0, result.output
        client = store.client()
        production = str(client.get_model_version_by_alias(MODEL, "production").version)
        other = next(str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")
                     if str(v.version) != production)
        settings = store.settings(monitor_dir=store.root / "monitoring")
        # The served version's traffic drifted, 2 to 20 hours ago: inside 24h, outside 1h.
        logged = write_log(settings, MODEL, {production: ("production", 600)}, drifted=True, labelled_share=0.6,
                           hours_ago=(2, 20), seed=1)
        challenger = write_log(settings, MODEL, {other: ("challenger", 150)}, drifted=False, labelled_share=0.5,
                               hours_ago=(2, 20), seed=2)
        run_id = client.get_model_version(MODEL, production).run_id
        test_metrics = client.get_run(run_id).data.metrics
    yield Site(store, settings, production, other,
               Logged({**logged.predictions, **challenger.predictions}, {**logged.labelled, **challenger.labelled},
                      logged.requests + challenger.requests), test_metrics)


@pytest.fixture(scope="module")
def http(site: Site) -> Iterator[TestClient]:
    with mlflow_state_kept(), TestClient(create_app(site.settings)) as client:
        yield client


def test_unknown_model_is_404_on_the_model_field(http: TestClient) -> None:
    answer = http.get("/api/models/no-such-model/production")
    assert answer.status_code == 404
    assert answer.json()["error"]["field"] == "model"
    assert "no-such-model" in answer.json()["error"]["message"]


@pytest.mark.parametrize("window", ["abc", "0h", "24", "1y", "400d", "99999999999999999999d"])
def test_a_bad_window_is_422_on_the_window_field(http: TestClient, window: str) -> None:
    answer = http.get(f"/api/models/{MODEL}/production", params={"window": window})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "window"
    assert window in answer.json()["error"]["message"]


def test_the_report_counts_what_was_logged(site: Site, http: TestClient) -> None:
    answer = http.get(f"/api/models/{MODEL}/production", params={"window": "24h"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert set(report) == REPORT_KEYS
    assert (report["model"], report["window"], report["task"]) == (MODEL, "24h", "binary")
    assert report["served"]["version"] == site.production and report["served"]["alias"] == "production"
    assert report["traffic"]["predictions"] == report["traffic"]["requests"] == site.logged.requests
    assert sum(bucket["predictions"] for bucket in report["traffic"]["buckets"]) == site.logged.requests
    versions = {entry["version"]: entry for entry in report["versions"]}
    assert {v: e["predictions"] for v, e in versions.items()} == site.logged.predictions
    assert {v: e["labelled"] for v, e in versions.items()} == site.logged.labelled
    served = {metric["name"]: metric for metric in versions[site.production]["live_metrics"]}
    assert served["roc_auc"]["test_value"] == pytest.approx(site.test_metrics["roc_auc"])
    assert served["roc_auc"]["low"] <= served["roc_auc"]["value"] <= served["roc_auc"]["high"]
    drift = report["drift"]
    assert drift["version"] == site.production and drift["rows"] == site.logged.predictions[site.production]
    assert all(set(feature) == DRIFT_KEYS for feature in [*drift["features"], drift["prediction"]])
    assert drift["residuals"] is None
    assert not [problem for problem in report["problems"] if "residual" in problem]  # nothing missing
    status = {feature["feature"]: feature["status"] for feature in drift["features"]}
    assert status["Age"] == status["Pclass"] == "alert" and report["status"] == "alert"
    assert report["explanation_drift"]["version"] == site.production


def test_the_default_window_is_the_setting(site: Site, http: TestClient) -> None:
    report = http.get(f"/api/models/{MODEL}/production").json()
    assert report["window"] == site.settings.monitor_window


def test_a_window_without_predictions_says_no_data(http: TestClient) -> None:
    report = http.get(f"/api/models/{MODEL}/production", params={"window": "1h"}).json()
    assert report["status"] == "no_data" and report["traffic"]["predictions"] == 0
    assert report["drift"] is None and report["versions"] == []
    assert "no predictions logged in this window" in report["problems"]


def pressed(html: str) -> list[str]:
    """The window buttons of a Production page, pressed ones in capitals."""
    return [choice.upper() if state == "true" else choice
            for choice, state in re.findall(r'data-window-choice="([^"]+)"\s+aria-pressed="(true|false)"', html)]


def test_the_page_has_a_stable_url_with_its_window(http: TestClient) -> None:
    page = http.get(f"/models/{MODEL}/production")
    assert page.status_code == 200 and 'src="/static/production.js"' in page.text
    assert pressed(page.text) == ["1h", "24H", "7d"]
    assert http.get("/static/production.js").status_code == 200
    assert pressed(http.get(f"/models/{MODEL}/production", params={"window": "30m"}).text) == ["1h", "24h", "7d", "30M"]
    assert f'href="/models/{MODEL}/production"' in http.get(f"/models/{MODEL}").text


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    offsite = offsite_requests(context)
    page = context.new_page()
    errors = console_errors(page)
    yield page
    assert offsite == [] and errors == []
    context.close()


def drift_rows(page: Any) -> list[tuple[str, str]]:
    return [tuple(row) for row in page.locator("[data-drift-rows] tr").evaluate_all(
        "rows => rows.map(row => [row.dataset.feature, row.dataset.status])")]


def chart_data(page: Any, name: str) -> list[dict[str, Any]]:
    return page.evaluate("(name) => document.querySelector(`[data-chart='${name}']`).data"
                         ".map((trace) => ({name: trace.name, x: trace.x, y: trace.y}))", name)


@pytest.mark.browser
def test_the_production_view_shows_drift_explanations_and_live_metrics(site: Site, page: Any) -> None:
    with mlflow_state_kept(), live_app(create_app(site.settings)) as url:
        page.goto(f"{url}/models/{MODEL}")
        page.click("[data-production]")
        page.wait_for_selector("[data-report]:not([hidden])", timeout=120_000)
        assert page.url == f"{url}/models/{MODEL}/production"
        assert page.get_attribute("[data-window-choice='24h']", "aria-pressed") == "true"

        # The overall status names the drifted features.
        assert page.get_attribute("[data-status-banner]", "data-status") == "alert"
        status = page.inner_text("[data-status-banner]")
        assert status.startswith("Alert:") and "Age" in status and "Pclass" in status
        assert f"serving v{site.production} (@production) · binary" in page.inner_text("[data-served]")

        # Traffic: every logged prediction in a bar, latency on its own axis.
        traces = chart_data(page, "traffic")
        assert [trace["name"] for trace in traces] == ["predictions", "latency p50", "latency p99"]
        assert sum(traces[0]["y"]) == site.logged.requests
        assert f"{site.logged.requests} predictions" in page.inner_text("[data-traffic-summary]")

        # Drift: alerts first, then watch, then ok; Age and Pclass flagged with their tests.
        rows = drift_rows(page)
        order = {"alert": 0, "watch": 1, "ok": 2}
        assert [order[s] for _, s in rows] == sorted(order[s] for _, s in rows)
        assert {"Age", "Pclass"} <= {feature for feature, s in rows if s == "alert"}
        age = page.locator("[data-drift-rows] tr[data-feature='Age']")
        assert age.locator("[data-test]").inner_text() == "Kolmogorov–Smirnov"
        assert age.locator(".status-badge").inner_text() == "alert"
        assert page.locator("[data-drift-rows] tr[data-feature='Sex'] [data-test]").inner_text() == "χ²"
        assert page.locator("[data-prediction-rows] tr[data-feature='prediction']").count() == 1
        assert page.locator("[data-prediction-rows] tr[data-feature='residual']").count() == 0
        assert page.is_hidden("[data-residual-note]")

        # Explanation drift: reference vs live bars for every feature, and the sentences.
        bars = chart_data(page, "explanation")
        assert [trace["name"] for trace in bars] == ["training reference", "live"]
        assert sorted(bars[0]["y"]) == sorted(["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"])
        words = page.locator("[data-explanation-words] li").evaluate_all(
            "items => items.map(item => [item.dataset.feature, item.textContent])")
        assert len(words) == 3 and all(text.startswith(f"{feature} ") and "training" in text for feature, text in words)

        # Live metrics per version, the served one's ROC-AUC next to its test value.
        served = page.locator(f"[data-versions] [data-version='{site.production}']")
        assert f"{site.logged.labelled[site.production]} with feedback" in served.inner_text()
        auc = served.locator("tr[data-metric='roc_auc']")
        assert auc.locator("[data-test-value]").inner_text() == f"{site.test_metrics['roc_auc']:.3f}"
        assert " – " in auc.locator("[data-interval]").inner_text()
        assert page.locator(f"[data-versions] [data-version='{site.other}']").count() == 1
        screenshot(page, "production")

        # The window picker: 1h has nothing logged, and the URL says which window is shown.
        page.click("[data-window-choice='1h']")
        page.wait_for_selector("[data-traffic-empty]:not([hidden])")
        assert page.url == f"{url}/models/{MODEL}/production?window=1h"
        assert page.get_attribute("[data-status-banner]", "data-status") == "no_data"
        assert page.is_hidden("[data-drift-section]") and page.is_hidden("[data-chart='traffic']")
        assert "No predictions logged in this window." in page.inner_text("[data-traffic-empty]")
        screenshot(page, "production-empty")

        page.go_back()
        page.wait_for_selector("[data-traffic-empty]", state="hidden")
        assert page.url == f"{url}/models/{MODEL}/production"
        assert page.get_attribute("[data-window-choice='24h']", "aria-pressed") == "true"

        page.goto(f"{url}/models/{MODEL}/production?window=7d")
        page.wait_for_selector("[data-report]:not([hidden])", timeout=120_000)
        assert page.get_attribute("[data-window-choice='7d']", "aria-pressed") == "true"
        assert sum(chart_data(page, "traffic")[0]["y"]) == site.logged.requests


@pytest.mark.browser
def test_a_served_version_without_reference_says_why(site: Site, page: Any, tmp_path: Path) -> None:
    """A version registered from a model folder outside any run has no training reference: the page shows its
    traffic and says why there is no drift, instead of numbers."""
    store = copy_of(site.store, tmp_path / "store")
    settings = store.settings(monitor_dir=tmp_path / "monitoring")
    with mlflow_state_kept():
        client = store.client()
        source = Path(client.get_model_version_download_uri(MODEL, site.production))
        outside = shutil.copytree(source, tmp_path / "model-from-elsewhere")
        version = str(client.create_model_version(MODEL, source=str(outside)).version)
        client.set_registered_model_alias(MODEL, "production", version)
        logged = write_log(settings, MODEL, {version: ("production", 120)}, drifted=False, labelled_share=0.0,
                           hours_ago=(2, 6), seed=3)
        with live_app(create_app(settings)) as url:
            page.goto(f"{url}/models/{MODEL}/production")
            page.wait_for_selector("[data-report]:not([hidden])", timeout=120_000)
            assert page.get_attribute("[data-status-banner]", "data-status") == "no_data"
            assert f"No reference for version {version}: " in page.inner_text("[data-problems]")
            assert sum(chart_data(page, "traffic")[0]["y"]) == logged.requests
            assert page.is_hidden("[data-drift-tables]")
            assert page.inner_text("[data-drift-empty]").startswith(f"No reference for version {version}: ")
            assert page.is_visible("[data-explanation-empty]")
            block = page.locator(f"[data-versions] [data-version='{version}']")
            assert block.locator("[data-reference-problem]").inner_text().startswith(
                f"No reference for version {version}: ")
            assert "No feedback yet" in block.locator("[data-no-feedback]").inner_text()
            screenshot(page, "production-no-reference")


TASK_CASES = {"diabetes": ("diabetes-progression", "ridge", "bmi"),
              "wine": ("wine-cultivar", "logistic-regression", "proline")}


@pytest.mark.browser
@pytest.mark.parametrize("dataset", sorted(TASK_CASES))
def test_the_view_follows_the_served_task(dataset: str, page: Any, tmp_path: Path) -> None:
    """A regressor and a multiclass classifier trained by the CLI, their traffic with one feature shifted:
    the view flags that feature and shows the task's own live metrics next to its test values."""
    name, run, shifted = TASK_CASES[dataset]
    store = Store(tmp_path)
    settings = store.settings(monitor_dir=tmp_path / "monitoring")
    with mlflow_state_kept():
        trained = invoke(store, "train", "--dataset", dataset, "--only", run, "--promote")
        assert trained.exit_code == 0, trained.output
        data = load_demo(dataset)
        rng = np.random.default_rng(5)
        picks = rng.integers(0, len(data.frame), 400)
        rows = data.X.iloc[picks].reset_index(drop=True)
        rows[shifted] = rows[shifted] + 1.5 * data.X[shifted].std()
        truth = [str(value) for value in data.y.iloc[picks]]
        write_rows(settings, name, "1", "production", rows, truth, spread(rng, len(rows), (0.2, 0.8)),
                   np.ones(len(rows), dtype=bool), rng)
        with live_app(create_app(settings)) as url:
            page.goto(f"{url}/models/{name}/production?window=1h")
            page.wait_for_selector("[data-report]:not([hidden])", timeout=120_000)
            assert f"serving v1 (@production) · {data.task.name}" in page.inner_text("[data-served]")
            assert page.get_attribute("[data-status-banner]", "data-status") == "alert"
            assert drift_rows(page)[0] == (shifted, "alert")
            assert sum(chart_data(page, "traffic")[0]["y"]) == len(rows)
            assert sorted(chart_data(page, "explanation")[0]["y"]) == sorted(data.features)
            metrics = page.locator("[data-versions] [data-version='1'] tr[data-metric]").evaluate_all(
                "rows => rows.map(row => row.dataset.metric)")
            assert data.task.headline in metrics
            headline = page.locator(f"[data-versions] tr[data-metric='{data.task.headline}']")
            assert headline.locator("[data-test-value]").inner_text() != "—"
            # A regressor's residuals (actual − prediction vs its test split) sit under its output, in order.
            outputs = page.locator("[data-prediction-rows] tr").evaluate_all(
                "rows => rows.map(row => row.dataset.feature)")
            assert outputs == (["prediction", "residual"] if data.task.has_residuals else ["prediction"])
            assert page.is_visible("[data-residual-note]") == data.task.has_residuals
            if data.task.has_residuals:
                residual = page.locator("[data-prediction-rows] tr[data-feature='residual']")
                assert residual.locator("[data-test]").inner_text() == "Kolmogorov–Smirnov"
                assert residual.get_attribute("data-status") in ("ok", "watch", "alert")
            screenshot(page, f"production-{dataset}")
