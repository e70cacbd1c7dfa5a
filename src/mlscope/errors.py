"""Errors users can cause. Each carries its CLI exit code and HTTP status."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """`text` with control characters (newlines, tabs, NUL, ...) written as escapes, so a message that
    quotes user input stays one line."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


class MlscopeError(Exception):
    """A problem explained in one line to the user."""

    exit_code = 1
    status = 500
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        message = one_line(message)
        super().__init__(message)
        self.message = message
        self.field = field


class BadInput(MlscopeError):
    """The user's input (data, config, arguments) is invalid; nothing was logged."""

    exit_code = 2
    status = 422
    code = "bad_input"


class NotFound(MlscopeError):
    """A named run, model, version or experiment does not exist."""

    exit_code = 1
    status = 404
    code = "not_found"


class TrackingUnavailable(MlscopeError):
    """The MLflow tracking store could not be reached."""

    exit_code = 1
    status = 503
    code = "tracking_unavailable"


class NeedsTrackingServer(MlscopeError):
    """Artifacts stored through an MLflow tracking server (`mlflow-artifacts:/` URIs, `--serve-artifacts`)
    were asked for with a tracking URI that is not that server (e.g. its database): a configuration
    problem that only the user can fix."""

    exit_code = 2
    status = 503
    code = "needs_tracking_server"


class NotReady(MlscopeError):
    """A service has nothing to answer with yet (e.g. no model loaded)."""

    exit_code = 1
    status = 503
    code = "not_ready"


class TooLarge(MlscopeError):
    """A request exceeds a configured size limit."""

    exit_code = 2
    status = 413
    code = "too_large"


class Unauthorized(MlscopeError):
    """A protected action was asked for without the configured token."""

    exit_code = 2
    status = 401
    code = "unauthorized"


class Conflict(MlscopeError):
    """The action does not fit the current state of what it targets (e.g. editing a deleted run)."""

    exit_code = 1
    status = 409
    code = "conflict"
