"""Markdown to HTML that can run nothing: run notes are written by anyone who can log to MLflow, so the HTML
they become is built by markdown-it-py with raw HTML off and only http(s), mailto and relative links, then
passed through an allowlist sanitiser (nh3, Ammonia's binding) as a second, independent guard."""

from __future__ import annotations

import re
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# Browsers ignore leading spaces/control characters and tabs or newlines anywhere in a URL's scheme.
_IGNORED_IN_URL = re.compile(r"[\x00-\x20\x7f]")

TAGS = frozenset({"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "s", "del", "code", "pre",
                  "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td"})
ATTRIBUTES = {"a": {"href"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}


def allowed_link(url: str) -> bool:
    """True for relative links and http, https and mailto ones; False for javascript:, data:, file:, ..."""
    found = _SCHEME.match(_IGNORED_IN_URL.sub("", url))
    return found is None or found.group(1).lower() in LINK_SCHEMES


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable(["table", "strikethrough"])
    # An image would load on view (a tracking pixel); `![alt](url)` shows as "!" and a link instead.
    parser.disable("image")
    parser.validateLink = allowed_link  # type: ignore[method-assign]
    return parser


def render(text: str) -> str:
    """The HTML of Markdown `text`: headings, emphasis, lists, links, code, quotes and tables; any HTML in
    `text` is shown as text and links to other schemes stay plain text."""
    html = _parser().render(text)
    return nh3.clean(html, tags=set(TAGS), attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
                     url_schemes=set(LINK_SCHEMES), link_rel="noopener noreferrer nofollow",
                     filter_style_properties={"text-align"}, strip_comments=True)
