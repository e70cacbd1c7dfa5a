"""Real servers and a real browser for tests: an ASGI app under uvicorn in a thread (the settings
`mlscope serve` uses) on a free port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlscope.cli.servers import server_config

CHROMIUM = os.environ.get("MLSCOPE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


SCREENSHOTS = Path(os.environ.get("MLSCOPE_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-output")) / "screenshots"


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot of a view under test-output/screenshots/ (CI keeps the folder)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    return target


def console_errors(page: Any) -> list[str]:
    """Collects the page's console errors and uncaught exceptions from now on (assert it stays empty)."""
    found: list[str] = []
    page.on("console", lambda message: found.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: found.append(str(error)))
    return found


def outside_requests(page: Any) -> list[str]:
    """Collects every request the page makes to anywhere but 127.0.0.1 from now on (assert it stays empty:
    the dashboard is offline-first)."""
    from urllib.parse import urlsplit

    found: list[str] = []

    def check(request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme not in ("data", "blob", "about") and parts.hostname != "127.0.0.1":
            found.append(request.url)

    page.on("request", check)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_ok(url: str, seconds: float) -> bool:
    """Poll `url` until it answers 200 (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return False


@contextmanager
def live_app(app: Any, ready_path: str = "/health") -> Iterator[str]:
    """Serve `app` on a free port until the block ends; yields its base URL once `ready_path` is 200."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(server_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for_ok(f"{url}{ready_path}", 30)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's package); skipped with the reason where it is not installed."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM)
                                              else shutil.which("chromium"), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
