"""/docs (Swagger UI) and /redoc of both apps in a real browser, with nothing but 127.0.0.1 to talk to:
the operations render, "Try it out" answers, no request leaves the machine, the CSP is never violated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from mlscope.serving.app import build_api
from mlscope.web.app import create_app
from tests.conftest import Store, copy_of
from tests.live import console_errors, csp_violations, live_app, offsite_requests, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def dashboard(trained: tuple[Store, object]) -> Iterator[str]:
    store, _ = trained
    with live_app(create_app(store.settings())) as url:
        yield url


@pytest.fixture(scope="module")
def prediction_api(trained: tuple[Store, object], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store, _ = trained
    with live_app(build_api(copy_of(store, tmp_path_factory.mktemp("docs-api")).settings()),
                  ready_path="/ready") as url:
        yield url


@dataclass
class Watched:
    """A page with everything that must stay empty collected while it runs."""

    page: Any
    offsite: list[str]
    errors: list[str]
    violations: Callable[[], list[str]]

    def assert_clean(self) -> None:
        assert self.offsite == [], f"requests left 127.0.0.1: {self.offsite}"
        assert self.violations() == [], "Content-Security-Policy violations"
        assert self.errors == [], "console errors"


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    offsite = offsite_requests(context)
    page = context.new_page()
    yield Watched(page, offsite, console_errors(page), csp_violations(page))
    context.close()


def operations(url: str) -> list[tuple[str, str]]:
    spec = httpx.get(f"{url}/openapi.json").json()
    return sorted((method.upper(), path) for path, methods in spec["paths"].items() for method in methods)


def swagger_operations(page: Any) -> list[tuple[str, str]]:
    page.wait_for_selector(".opblock .opblock-summary-path", timeout=15_000)
    shown = page.eval_on_selector_all(".opblock", """blocks => blocks.map(block => [
        block.querySelector('.opblock-summary-method').textContent,
        block.querySelector('.opblock-summary-path').getAttribute('data-path')])""")
    return sorted((method, path) for method, path in shown)


def test_dashboard_docs_render_every_operation_offline(dashboard: str, watched: Watched) -> None:
    watched.page.goto(dashboard + "/docs")
    assert swagger_operations(watched.page) == operations(dashboard)
    assert ("GET", "/api/compare") in operations(dashboard)
    assert watched.page.title() == "mlscope dashboard - Swagger UI"
    screenshot(watched.page, "docs-dashboard")
    watched.assert_clean()


def test_prediction_api_docs_try_it_out_predicts(prediction_api: str, watched: Watched) -> None:
    page = watched.page
    page.goto(prediction_api + "/docs")
    assert swagger_operations(page) == operations(prediction_api)
    block = page.locator(".opblock-post:has(.opblock-summary-path[data-path='/predict'])")
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    examples = block.locator(".opblock-section-request-body .examples-select select")
    assert examples.locator("option").all_inner_texts() == ["example 1", "example 2"]  # the product brief's two

    for example, survived, text in (("example 1", 0, "Did not survive"), ("example 2", 1, "Survived")):
        examples.select_option(label=example)
        block.locator("button.execute").click()
        status = block.locator(".live-responses-table .response .response-col_status")
        status.wait_for(timeout=15_000)
        assert status.inner_text().strip() == "200"
        body = block.locator(".live-responses-table .response-col_description pre").first.inner_text()
        assert f'"survived": {survived}' in body and f'"prediction_text": "{text}"' in body
        if survived == 0:
            block.locator("button.btn-clear").click()
    screenshot(page, "docs-prediction-api")
    watched.assert_clean()


@pytest.mark.parametrize("app", ["dashboard", "prediction_api"])
def test_redoc_renders_every_operation_offline(app: str, request: pytest.FixtureRequest, watched: Watched) -> None:
    url = request.getfixturevalue(app)
    page = watched.page
    page.goto(url + "/redoc")
    page.wait_for_selector(".api-content [data-section-id*='operation/']", timeout=15_000)
    sections = page.eval_on_selector_all(".api-content [data-section-id*='operation/']",
                                         "found => found.map(s => s.getAttribute('data-section-id'))")
    spec = httpx.get(f"{url}/openapi.json").json()
    ids = {operation["operationId"] for methods in spec["paths"].values() for operation in methods.values()}
    assert {section.rsplit("operation/", 1)[1] for section in sections} == ids
    assert page.locator(".api-content h1").first.inner_text().startswith(spec["info"]["title"])
    page.fill("input[placeholder='Search...']", "health")  # the search index lives in a web worker
    page.wait_for_selector("[data-role='search:results'] li[data-item-id$='operation/health_health_get']",
                           timeout=15_000)
    screenshot(page, f"redoc-{app.replace('_', '-')}")
    watched.assert_clean()

