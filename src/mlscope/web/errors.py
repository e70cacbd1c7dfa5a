"""One JSON error shape for the apps: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from mlflow.exceptions import MlflowException
from starlette.exceptions import HTTPException

from mlscope.errors import MlscopeError, one_line
from mlscope.tracking.client import tracking_failure


def error_body(code: str, message: str, field: str | None = None) -> dict[str, dict[str, str | None]]:
    return {"error": {"code": code, "message": one_line(message), "field": field}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MlscopeError)
    async def _mlscope(_: Request, exc: MlscopeError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = [str(part) for part in first.get("loc", ())]
        loc = [part for part in where if part not in ("body", "query", "path")]
        if first.get("type") == "json_invalid":
            loc = []
        field = ".".join(loc) or ("body" if where[:1] == ["body"] else None)
        return JSONResponse(error_body("invalid_request", f"{field or 'request'}: {first.get('msg', 'invalid')}",
                                       field), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            return JSONResponse(error_body("invalid_request", "body: not valid UTF-8 JSON", "body"), status_code=422)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(MlflowException)
    async def _mlflow(_: Request, exc: MlflowException) -> JSONResponse:
        unavailable = tracking_failure(exc)
        if unavailable is not None:
            return JSONResponse(error_body("tracking_unavailable", unavailable), status_code=503)
        message = str(exc.message).strip().splitlines()[0]
        return JSONResponse(error_body("tracking_error", f"MLflow: {message}"), status_code=503)
