"""The run's note and tags edited on the run page in a real browser (Debian's Chromium through Playwright),
served over real HTTP; checked in MLflow after each change and after a reload. Hostile notes stay inert."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from mlscope.web.app import create_app
from tests.conftest import Store
from tests.live import live_app, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NOTE = "mlflow.note.content"
MARKDOWN = ("## Baseline\n\nTrained on the *full* split, see [MLflow](https://mlflow.org/docs).\n\n"
            "- `C=1.0`\n- seed **42**\n")
HOSTILE = ("<img src=x onerror=\"window.pwned='img'\">\n\n<script>window.pwned='script'</script>\n\n"
           "[click](javascript:window.pwned='link') and [ok](https://example.org)\n\n"
           "<a href=\"javascript:window.pwned='a'\">raw link</a> ![pixel](https://tracker.example/p.png)")
NOT_PWNED = "() => window.pwned === undefined"


@dataclass(frozen=True)
class Site:
    url: str
    store: Store


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Store(tmp_path_factory.mktemp("annotations-view"))
    with live_app(create_app(store.settings())) as url:
        yield Site(url, store)


def new_run(site: Site, **tags: str) -> str:
    client = site.store.client()
    run_id = client.create_run(site.store.experiment("notes"), run_name="annotated", tags=tags).info.run_id
    client.set_terminated(run_id)
    return run_id


def tags_of(site: Site, run_id: str) -> dict[str, str]:
    return dict(site.store.client().get_run(run_id).data.tags)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("dialog", lambda dialog: page.errors.append(f"dialog: {dialog.message}"))

    def local_only(route: Any) -> None:
        if urlsplit(route.request.url).hostname != "127.0.0.1":
            page.errors.append(f"request left 127.0.0.1: {route.request.url}")
            route.abort()
        else:
            route.continue_()

    context.route("**/*", local_only)
    yield page
    context.close()


def open_run(page: Any, site: Site, run_id: str) -> None:
    page.goto(f"{site.url}/runs/{run_id}")
    page.wait_for_selector("[data-run-view][data-loaded='true']")


def write_note(page: Any, text: str) -> None:
    page.click("[data-note-edit]")
    page.fill("[data-note-input]", text)
    page.click("[data-note-save]")
    page.wait_for_selector("[data-note-editor]", state="hidden")


def test_edit_the_note_with_a_preview_and_it_stays(site: Site, page: Any) -> None:
    run_id = new_run(site)
    open_run(page, site, run_id)
    assert page.inner_text("[data-note-empty]") == "No description."
    assert page.inner_text("[data-note-edit]") == "Add a description"

    page.click("[data-note-edit]")
    page.fill("[data-note-input]", MARKDOWN)
    page.click("[data-note-tab='preview']")
    page.wait_for_selector("[data-note-preview][data-rendered='true'] h2")
    assert page.inner_text("[data-note-preview] h2") == "Baseline"
    assert page.inner_text("[data-note-preview] em") == "full"
    assert page.locator("[data-note-input]").is_hidden()
    assert NOTE not in tags_of(site, run_id)  # a preview stores nothing
    page.click("[data-note-tab='write']")
    assert page.input_value("[data-note-input]") == MARKDOWN
    screenshot(page, "run-note-editor")
    page.click("[data-note-save]")
    page.wait_for_selector("[data-note-body] h2")
    assert tags_of(site, run_id)[NOTE] == MARKDOWN

    for reloaded in (False, True):
        if reloaded:
            open_run(page, site, run_id)
            page.wait_for_selector("[data-note-body] h2")
        assert page.inner_text("[data-note-body] h2") == "Baseline"
        assert page.inner_text("[data-note-body] em") == "full"
        assert page.locator("[data-note-body] li").all_inner_texts() == ["C=1.0", "seed 42"]
        assert page.inner_text("[data-note-body] li code") == "C=1.0"
        assert page.get_attribute("[data-note-body] a", "href") == "https://mlflow.org/docs"
        assert page.get_attribute("[data-note-body] a", "rel") == "noopener noreferrer nofollow"
        assert page.is_hidden("[data-note-empty]") and page.inner_text("[data-note-edit]") == "Edit"
        assert page.locator(f"[data-system-tags] tr[data-key='{NOTE}']").count() == 1
    screenshot(page, "run-note")

    page.click("[data-note-edit]")  # editing again starts from the stored Markdown; Cancel changes nothing
    assert page.input_value("[data-note-input]") == MARKDOWN
    page.fill("[data-note-input]", "discarded")
    page.click("[data-note-cancel]")
    assert page.inner_text("[data-note-body] h2") == "Baseline" and tags_of(site, run_id)[NOTE] == MARKDOWN
    assert page.errors == []


def test_add_edit_and_remove_tags(site: Site, page: Any) -> None:
    run_id = new_run(site, **{"mlscope.task": "binary_classification", "stage": "draft"})
    open_run(page, site, run_id)
    task = "[data-tags] tr[data-key='mlscope.task']"
    assert page.inner_text(f"{task} td.actions") == "set by mlscope"
    assert page.locator(f"{task} button").count() == 0

    page.fill("[data-new-tag-key]", "owner")
    page.fill("[data-new-tag-value]", "data team")
    page.click("[data-tag-form] button[type='submit']")
    page.wait_for_selector("[data-tags] tr[data-key='owner']")
    assert page.inner_text("[data-tags] tr[data-key='owner'] td.value") == "data team"
    assert page.input_value("[data-new-tag-key]") == ""
    assert tags_of(site, run_id)["owner"] == "data team"

    page.click("[data-tag-edit='stage']")
    page.fill("[data-tag-input='stage']", "reviewed")
    page.click("[data-tag-save='stage']")
    page.wait_for_selector("[data-tags] tr[data-key='stage'] td.value:text-is('reviewed')")
    assert tags_of(site, run_id)["stage"] == "reviewed"

    page.click("[data-tag-remove='owner']")
    assert tags_of(site, run_id)["owner"] == "data team"  # asks first
    page.click("[data-tag-confirm='owner']")
    page.wait_for_selector("[data-tags] tr[data-key='owner']", state="detached")
    assert "owner" not in tags_of(site, run_id)

    # A system tag cannot be set: the API's one-line reason shows under the form and nothing changes.
    page.fill("[data-new-tag-key]", "mlflow.runName")
    page.fill("[data-new-tag-value]", "renamed")
    page.click("[data-tag-form] button[type='submit']")
    page.wait_for_selector("[data-tag-error]:not([hidden])")
    assert "MLflow system tag and read-only here" in page.inner_text("[data-tag-error]")
    assert tags_of(site, run_id)["mlflow.runName"] == "annotated"
    screenshot(page, "run-tags")

    open_run(page, site, run_id)
    keys = page.locator("[data-tags] tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert keys == ["mlscope.task", "stage"]
    assert page.inner_text("[data-tags] tr[data-key='stage'] td.value") == "reviewed"
    assert [e for e in page.errors if "422" not in e] == []  # Chromium logs the refused request's status


def test_hostile_notes_are_inert(site: Site, page: Any) -> None:
    run_id = new_run(site)
    open_run(page, site, run_id)
    page.click("[data-note-edit]")
    page.fill("[data-note-input]", HOSTILE)
    page.click("[data-note-tab='preview']")
    page.wait_for_selector("[data-note-preview][data-rendered='true'] p")
    page.click("[data-note-tab='write']")
    page.click("[data-note-save]")
    page.wait_for_selector("[data-note-body] p")
    assert tags_of(site, run_id)[NOTE] == HOSTILE

    for reloaded in (False, True):
        if reloaded:
            open_run(page, site, run_id)
            page.wait_for_selector("[data-note-body] p")
        body = page.locator("[data-note-body]")
        assert body.locator("img, script, iframe, svg").count() == 0
        text = body.inner_text()
        assert "<img src=x onerror=" in text and "<script>" in text and "[click](javascript:" in text
        hrefs = body.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert hrefs == ["https://example.org", "https://tracker.example/p.png"]
        assert page.evaluate(NOT_PWNED)
    assert page.errors == []


def test_the_page_never_injects_html_the_server_would_let_through(site: Site, page: Any) -> None:
    """The browser's own guard, tested alone: hostile HTML handed to safe_html.js comes out as inert nodes."""
    open_run(page, site, new_run(site))
    counts = page.evaluate("""async () => {
        const {safeFragment} = await import('/static/safe_html.js');
        const box = document.createElement('div');
        box.id = 'probe';
        box.append(safeFragment('<img src=x onerror="window.pwned=1"><script>window.pwned=2</scr' + 'ipt>' +
            '<p onclick="window.pwned=3" style="color:red">para <a href="javascript:window.pwned=4">js</a> ' +
            '<a href=" JaVa&#x09;Script:window.pwned=5">js2</a> <a href="/runs/x" target="_top">ok</a></p>' +
            '<iframe src="https://example.org"></iframe><svg onload="window.pwned=6"></svg>' +
            '<table><tr><td style="text-align:right;background:url(https://x.example)">1</td></tr></table>'));
        document.body.append(box);
        for (const link of box.querySelectorAll('a:not([href])')) link.click();
        await new Promise((resolve) => setTimeout(resolve, 200));
        const attrs = [...box.querySelectorAll('*')].flatMap((n) => [...n.attributes].map((a) => `${n.localName}.${a.name}=${a.value}`));
        return {elements: [...box.querySelectorAll('*')].map((n) => n.localName), attrs, text: box.textContent};
    }""")
    assert counts["elements"] == ["p", "a", "a", "a", "table", "tbody", "tr", "td"]
    assert counts["attrs"] == ["a.rel=noopener noreferrer nofollow", "a.rel=noopener noreferrer nofollow",
                               "a.href=/runs/x", "a.rel=noopener noreferrer nofollow", "td.style=text-align: right;"]
    assert "window.pwned=2" in counts["text"]  # the script's source survives as text, never as a script
    assert page.evaluate(NOT_PWNED)


def test_with_a_token_the_page_asks_for_it_once(site: Site, browser: Any) -> None:
    run_id = new_run(site)
    with live_app(create_app(site.store.settings(token="s3cret"))) as url:
        context = browser.new_context()
        try:
            page = context.new_page()
            asked: list[str] = []

            def answer(dialog: Any) -> None:
                asked.append(dialog.message)
                dialog.accept("s3cret")

            page.on("dialog", answer)
            page.goto(f"{url}/runs/{run_id}")
            page.wait_for_selector("[data-run-view][data-loaded='true']")
            write_note(page, "*signed*")
            page.fill("[data-new-tag-key]", "owner")
            page.fill("[data-new-tag-value]", "me")
            page.click("[data-tag-form] button[type='submit']")
            page.wait_for_selector("[data-tags] tr[data-key='owner']")
        finally:
            context.close()
    assert asked == ["This action needs the dashboard token (MLSCOPE_TOKEN):"]
    assert tags_of(site, run_id)[NOTE] == "*signed*" and tags_of(site, run_id)["owner"] == "me"
