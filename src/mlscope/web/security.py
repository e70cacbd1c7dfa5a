"""Response headers that keep the dashboard to its own origin, and the optional token on reads."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.middleware.base import RequestResponseEndpoint

from mlscope.config import Settings
from mlscope.web.context import presented_token, token_matches
from mlscope.web.errors import error_body

# Plotly injects <style> elements, so styles allow 'unsafe-inline'; scripts come only from this origin.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                           "frame-ancestors 'none'; form-action 'self'")
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
OPEN_PATHS = ("/health", "/static/", "/vendor/")


def install_security(app: FastAPI, settings: Settings) -> None:
    """No CORS middleware on purpose: browsers refuse cross-origin reads of the JSON API."""

    @app.middleware("http")
    async def _secure(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if settings.protect_reads and settings.token is not None and request.url.path.startswith("/api/"):
            given = presented_token(request.headers.get("authorization"), request.headers.get("x-mlscope-token"))
            if not token_matches(settings, given):
                response: Response = JSONResponse(error_body(
                    "unauthorized", "reads need the dashboard token: send 'Authorization: Bearer <MLSCOPE_TOKEN>'",
                    "token"), status_code=401)
                response.headers.update(HEADERS)
                return response
        response = await call_next(request)
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)
        return response
