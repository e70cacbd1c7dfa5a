"""/docs and /redoc of both apps name only their own origin's assets, start no inline script, and the
assets are served with the right types (the browser tests check that the pages render)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mlscope.config import Settings

TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class Page(HTMLParser):
    """The URLs a page loads, its inline script bodies and the data attributes of its elements."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self.data: dict[str, str] = {}
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.urls += [values[name] for name in ("src", "href") if name in values]
        self.data.update({name: value for name, value in values.items() if name.startswith("data-")})
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


@pytest.fixture(scope="module", params=["dashboard", "prediction API"])
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = Settings(tracking_uri=f"sqlite:///{tmp_path_factory.mktemp('docs') / 'mlflow.db'}")
    if request.param == "dashboard":
        from mlscope.web.app import create_app

        return create_app(settings)
    from mlscope.serving.app import build_api

    return build_api(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    yield TestClient(app)


def policy(header: str) -> dict[str, list[str]]:
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {words[0]: words[1:] for words in directives}


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets_of_the_right_type(client: TestClient, path: str) -> None:
    reply = client.get(path)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    assert "http://" not in reply.text and "https://" not in reply.text
    page = Page(reply.text)
    assert page.inline_scripts == []
    assert len(page.urls) == (4 if path == "/docs" else 3)  # favicon, (stylesheet,) bundle, start-up script
    for url in page.urls:
        assert url.startswith("/docs/assets/"), url
        asset = client.get(url)
        assert asset.status_code == 200 and asset.content, url
        assert asset.headers["content-type"].split(";")[0] == TYPES[Path(url.split("?")[0]).suffix], url
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert any(url.startswith("/docs/assets/favicon.png") for url in page.urls)

    rules = policy(reply.headers["content-security-policy"])
    assert rules["script-src"] == ["'self'"] and rules["connect-src"] == ["'self'"]
    assert not any("'unsafe-eval'" in sources for sources in rules.values())
    assert rules.get("worker-src") == (["blob:"] if path == "/redoc" else None)  # ReDoc's search worker only


def test_the_pages_name_this_apps_openapi_document(client: TestClient, app: FastAPI) -> None:
    config = json.loads(Page(client.get("/docs").text).data["data-config"])
    assert config["url"] == "/openapi.json" and config["validatorUrl"] is None  # no validator.swagger.io
    assert Page(client.get("/redoc").text).data["data-openapi-url"] == "/openapi.json"
    assert client.get("/openapi.json").json()["info"]["title"] == app.title
    assert client.get("/docs").text.count(f"<title>{app.title} - Swagger UI</title>") == 1


def test_behind_a_proxy_prefix_every_url_carries_it(app: FastAPI) -> None:
    proxied = TestClient(app, root_path="/mlscope")
    page = Page(proxied.get("/docs").text)
    assert page.urls and all(url.startswith("/mlscope/docs/assets/") for url in page.urls)
    assert json.loads(page.data["data-config"])["url"] == "/mlscope/openapi.json"
    assert Page(proxied.get("/redoc").text).data["data-openapi-url"] == "/mlscope/openapi.json"


def test_the_redoc_bundle_loads_no_outside_image(client: TestClient) -> None:
    url = next(u for u in Page(client.get("/redoc").text).urls if "redoc.standalone.js" in u)
    reply = client.get(url)
    assert reply.status_code == 200 and "Redoc" in reply.text
    bundle = reply.text
    assert "cdn.redoc.ly" not in bundle and "fonts.googleapis" not in bundle


def test_unknown_asset_is_a_404_in_the_error_shape(client: TestClient) -> None:
    reply = client.get("/docs/assets/..%2Fapp.py")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"
    assert client.get("/docs/assets/swagger-initializer.js").json()["error"]["field"] == "name"
