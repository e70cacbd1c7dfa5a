"""What every dashboard route works with, built once by `create_app` and reached through `Web`."""

# No `from __future__ import annotations`: FastAPI reads the Annotated dependencies at runtime.
import hmac
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.templating import Jinja2Templates
from mlflow.tracking import MlflowClient

from mlscope.config import Settings
from mlscope.errors import Unauthorized
from mlscope.tracking.index import RunIndex


@dataclass
class WebContext:
    """The settings, the MLflow client and the run index of one dashboard app."""

    settings: Settings
    client: MlflowClient
    index: RunIndex
    templates: Jinja2Templates
    services: dict[str, Any] = field(default_factory=dict)


def web_context(request: Request) -> WebContext:
    return request.app.state.web


Web = Annotated[WebContext, Depends(web_context)]


def presented_token(authorization: str | None, x_mlscope_token: str | None) -> str | None:
    if x_mlscope_token:
        return x_mlscope_token
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def token_matches(settings: Settings, given: str | None) -> bool:
    """True when no token is configured, or `given` equals it."""
    if settings.token is None:
        return True
    expected = settings.token.get_secret_value().encode()
    return given is not None and hmac.compare_digest(given.encode(), expected)


def require_token(
    web: Web,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_mlscope_token: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """Mutating routes depend on this: with MLSCOPE_TOKEN set they need it as a bearer token."""
    if not token_matches(web.settings, presented_token(authorization, x_mlscope_token)):
        raise Unauthorized("this action needs the dashboard token: send 'Authorization: Bearer <MLSCOPE_TOKEN>'",
                           field="token")


Mutation = Depends(require_token)
