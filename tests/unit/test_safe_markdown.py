"""Run notes: Markdown becomes HTML with the usual formatting, and nothing in it can run or load."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from mlscope.safe_markdown import LINK_SCHEMES, TAGS, allowed_link, render

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "<javascript:alert(1)>",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](file:///etc/passwd)",
    '<a href="javascript:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    "<iframe src=https://example.com></iframe>",
    "![pixel](https://tracker.example/p.png)",
    '[x](https://ok.example "t" onmouseover=alert(1))',
    "<style>body{display:none}</style>",
    "[x]: javascript:alert(1)\n\n[x]",
]


class Elements(HTMLParser):
    """Every start tag of a fragment with its attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def assert_inert(html: str) -> None:
    for tag, attrs in Elements(html).found:
        assert tag in TAGS, (tag, html)
        for name, value in attrs.items():
            assert not name.startswith("on") and name in {"href", "rel", "start", "style"}, (name, html)
            if name == "href":
                assert value is not None and allowed_link(value), html
            if name == "style":
                assert value in {"text-align:left", "text-align:right", "text-align:center"}, html


def test_markdown_formatting_is_rendered() -> None:
    html = render("# Baseline\n\nSome *emphasis*, **strong** and `code`.\n\n- one\n- two\n\n1. first\n\n"
                  "[docs](https://mlflow.org/docs) and [run](/runs/abc) and [mail](mailto:a@b.org)\n\n"
                  "```\nx = 1 < 2\n```\n\n> quoted\n\n| a | b |\n|--:|---|\n| 1 | 2 |\n\n~~old~~")
    assert "<h1>Baseline</h1>" in html
    assert "<em>emphasis</em>" in html and "<strong>strong</strong>" in html and "<code>code</code>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html and "<ol>\n<li>first</li>\n</ol>" in html
    assert '<a href="https://mlflow.org/docs" rel="noopener noreferrer nofollow">docs</a>' in html
    assert '<a href="/runs/abc"' in html and '<a href="mailto:a@b.org"' in html
    assert "<pre><code>x = 1 &lt; 2\n</code></pre>" in html
    assert "<blockquote>" in html and '<th style="text-align:right">a</th>' in html and "<s>old</s>" in html
    assert_inert(html)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_notes_become_text(text: str) -> None:
    html = render(text)
    assert_inert(html)
    assert not any(f"<{tag}" in html for tag in ("script", "img", "svg", "iframe", "style"))


def test_raw_html_is_shown_as_the_text_it_is() -> None:
    assert render("<img src=x onerror=alert(1)>") == "<p>&lt;img src=x onerror=alert(1)&gt;</p>\n"
    assert render("<script>alert(1)</script>") == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    assert render("[x](javascript:alert(1))") == "<p>[x](javascript:alert(1))</p>\n"


def test_only_web_and_mail_links_are_allowed() -> None:
    assert LINK_SCHEMES == {"http", "https", "mailto"}
    for good in ("https://a.org", "HTTP://a.org", "mailto:x@y.z", "/runs/1", "runs/1", "#part", "?q=1", "%6Aava:x"):
        assert allowed_link(good), good
    for bad in ("javascript:alert(1)", " JavaScript:x", "java\tscript:x", "\x01javascript:x", "data:text/html,x",
                "vbscript:x", "file:///etc/passwd", "blob:x"):
        assert not allowed_link(bad), bad
