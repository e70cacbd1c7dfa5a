"""/docs (Swagger UI) and /redoc for both apps, served from installed packages: no CDN, no inline script.

FastAPI's own pages load Swagger UI and ReDoc from a CDN and start them with an inline <script>, which a
`script-src 'self'` policy refuses. Here the bundles come from the `fastapi-offline` package, the start-up
code from two small files of ours, and the page hands them the OpenAPI URL in a data attribute."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from html import escape
from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from mlscope.errors import NotFound
from mlscope.web.security import CONTENT_SECURITY_POLICY

ASSET_PREFIX = "/docs/assets"
# ReDoc builds its search index in a web worker started from a blob: URL of its own bundled code.
REDOC_POLICY = f"{CONTENT_SECURITY_POLICY}; worker-src blob:"
SWAGGER_PARAMETERS = {"dom_id": "#swagger-ui", "layout": "BaseLayout", "deepLinking": True,
                      "showExtensions": True, "showCommonExtensions": True,
                      "validatorUrl": None}  # never send the document to validator.swagger.io


@dataclass(frozen=True)
class Asset:
    file: Traversable
    media_type: str
    replace: tuple[tuple[bytes, bytes], ...] = ()  # (regex, replacement) on the file's bytes when first served


def _vendored(name: str) -> Traversable:
    return resources.files("fastapi_offline").joinpath("static", name)


def _own(name: str) -> Traversable:
    return resources.files("mlscope.web").joinpath("docs_assets", name)


ASSETS = {
    "swagger-ui-bundle.js": Asset(_vendored("swagger-ui-bundle.js"), "text/javascript"),
    "swagger-ui.css": Asset(_vendored("swagger-ui.css"), "text/css"),
    # ReDoc's side menu shows a logo it loads from Redocly's CDN (no option turns it off); an empty data:
    # image instead fails to decode and ReDoc drops the <img>, so the page makes no outside request.
    "redoc.standalone.js": Asset(_vendored("redoc.standalone.js"), "text/javascript",
                                 replace=((rb'src:"https://[^"]+/logo-mini\.svg"', b'src:"data:,"'),)),
    "favicon.png": Asset(_vendored("favicon.png"), "image/png"),
    "swagger-init.js": Asset(_own("swagger-init.js"), "text/javascript"),
    "redoc-init.js": Asset(_own("redoc-init.js"), "text/javascript"),
}


@cache
def _content(name: str) -> tuple[bytes, str]:
    """An asset's bytes and the short content hash its URLs carry (read once per process)."""
    body = ASSETS[name].file.read_bytes()
    for old, new in ASSETS[name].replace:
        body = re.sub(old, new, body)
    return body, hashlib.sha256(body).hexdigest()[:12]


def asset_url(root_path: str, name: str) -> str:
    return f"{root_path}{ASSET_PREFIX}/{name}?v={_content(name)[1]}"


def swagger_page(title: str, openapi_url: str, root_path: str = "") -> str:
    """The Swagger UI page: its stylesheet and scripts from this origin, its settings as data."""
    config = escape(json.dumps({**SWAGGER_PARAMETERS, "url": openapi_url}))
    return _page(f"{title} - Swagger UI", root_path, ["swagger-ui.css"], ["swagger-ui-bundle.js", "swagger-init.js"],
                 f'<div id="swagger-ui" data-config="{config}"></div>')


def redoc_page(title: str, openapi_url: str, root_path: str = "") -> str:
    """The ReDoc page (no web fonts: ReDoc falls back to the system's)."""
    return _page(f"{title} - ReDoc", root_path, [], ["redoc.standalone.js", "redoc-init.js"],
                 f'<div id="redoc" data-openapi-url="{escape(openapi_url)}"></div>')


def _page(title: str, root_path: str, styles: list[str], scripts: list[str], body: str) -> str:
    head = [f'<link rel="icon" type="image/png" href="{asset_url(root_path, "favicon.png")}">']
    head += [f'<link rel="stylesheet" href="{asset_url(root_path, name)}">' for name in styles]
    head += [f'<script src="{asset_url(root_path, name)}" defer></script>' for name in scripts]
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n" + "\n".join(head) + f"\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def install_api_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to an app built with `docs_url=None, redoc_url=None`."""
    openapi_url = app.openapi_url or "/openapi.json"

    def headers(policy: str) -> dict[str, str]:
        return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(swagger_page(app.title, root + openapi_url, root), headers=headers(CONTENT_SECURITY_POLICY))

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(redoc_page(app.title, root + openapi_url, root), headers=headers(REDOC_POLICY))

    @app.get(ASSET_PREFIX + "/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise NotFound(f"no documentation asset named {name!r}", field="name")
        body, _ = _content(name)
        return Response(body, media_type=ASSETS[name].media_type,
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"})
