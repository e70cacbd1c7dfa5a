"""The registry views in a real browser: promote a version to @production with a reason, remove an
alias, see the API's validation error in the dialog. On a copy of the trained store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlscope.web.app import create_app
from tests.conftest import Store, copy_of
from tests.live import live_app, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]
MODEL = "titanic-survival"


@pytest.fixture
def copied(trained: tuple[Store, object], tmp_path: Path) -> Store:
    return copy_of(trained[0], tmp_path / "copy")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    page = context.new_page()
    page.problems = []  # console errors and uncaught exceptions
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    yield page
    context.close()


def aliases(store: Store) -> dict[str, str]:
    return {alias: str(version) for alias, version in store.client().get_registered_model(MODEL).aliases.items()}


def badges(page: Any, version: str) -> list[str]:
    return page.locator(f"tr[data-version='{version}'] .badge.alias").evaluate_all(
        "nodes => nodes.map(n => n.dataset.alias)")


def test_promote_remove_and_invalid_alias(copied: Store, page: Any) -> None:
    before = aliases(copied)
    production = before["production"]
    target = next(str(v.version) for v in copied.client().search_model_versions(f"name = '{MODEL}'")
                  if str(v.version) != production)
    with live_app(create_app(copied.settings())) as url:
        page.goto(url + "/models")
        page.wait_for_selector(f"tr[data-model='{MODEL}']")
        assert page.inner_text("[data-count]") == "1 model(s)"
        row = page.locator(f"tr[data-model='{MODEL}']")
        assert "@production → v" + production in row.inner_text()
        screenshot(page, "models")
        page.click(f"a:text-is('{MODEL}')")
        page.wait_for_selector("tr[data-version='1']")
        assert page.url == f"{url}/models/{MODEL}"
        assert badges(page, production) == ["production", "staging"]
        assert page.locator("[data-history-rows] tr").count() == 2

        # The reserved alias: the API's message shows in the dialog, which stays open.
        page.click(f"[data-promote='{target}']")
        page.fill("[data-alias-input]", "v1")
        page.fill("[data-reason]", "try")
        page.click("[data-confirm]")
        page.wait_for_selector("[data-dialog-error]:not([hidden])")
        assert "reserved" in page.inner_text("[data-dialog-error]")
        assert page.is_visible("[data-alias-dialog]")
        page.click("[data-cancel]")
        assert not page.is_visible("[data-alias-dialog]")

        page.click(f"[data-promote='{target}']")
        page.fill("[data-alias-input]", "production")
        assert page.inner_text("[data-dialog-sentence]") == f"Move @production from v{production} to v{target}?"
        page.fill("[data-reason]", "better AUC on the holdout")
        screenshot(page, "model-dialog")
        page.click("[data-confirm]")
        page.wait_for_selector(f"tr[data-version='{target}'] [data-alias='production']")
        assert badges(page, target) == ["production"] and badges(page, production) == ["staging"]
        assert not page.is_visible("[data-alias-dialog]")
        first = page.locator("[data-history-rows] tr").first.inner_text()
        assert re.search(rf"tester\s+move\s+@production\s+v{production} → v{target}\s+better AUC on the holdout",
                         first), first
        assert aliases(copied)["production"] == target

        page.click(f"tr[data-version='{production}'] [data-remove-alias='staging']")
        assert page.inner_text("[data-dialog-sentence]") == f"Remove @staging from v{production}?"
        page.fill("[data-reason]", "no staging environment any more")
        page.click("[data-confirm]")
        page.wait_for_selector(f"tr[data-version='{production}'] .badge.alias", state="detached")
        first = page.locator("[data-history-rows] tr").first.inner_text()
        assert re.search(rf"remove\s+@staging\s+v{production} → —\s+no staging environment any more", first), first
        assert page.locator("[data-history-rows] tr").count() == 4
        assert aliases(copied) == {"production": target}
        screenshot(page, "model")

    # The reserved alias's 422 is the one failed request the browser logs; nothing else may fail.
    unexpected = [p for p in page.problems if "status of 422" not in p]
    assert unexpected == []
