"""MLflow's "API request ... failed with exception ..." becomes one readable line naming the server."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from mlscope.tracking.client import tracking_failure

URL = "http://127.0.0.1:48969/api/2.0/mlflow/runs/search"


def failed(cause: str) -> MlflowException:
    return MlflowException(f"API request to {URL} failed with exception {cause}")


@pytest.mark.parametrize("cause, why", [
    ("HTTPConnectionPool(host='127.0.0.1', port=48969): Max retries exceeded with url: /api/2.0/mlflow/runs/search "
     "(Caused by ResponseError('too many 503 error responses'))",
     "it answered HTTP 503 to every retry (its database may be down)"),
    ("HTTPConnectionPool(host='127.0.0.1', port=48969): Max retries exceeded with url: /x "
     "(Caused by ResponseError('too many 500 error responses'))", "it answered HTTP 500 to every retry"),
    ("HTTPConnectionPool(host='127.0.0.1', port=48969): Max retries exceeded with url: /x (Caused by "
     "NewConnectionError('<urllib3.connection.HTTPConnection object>: Failed to establish a new connection: "
     "[Errno 111] Connection refused'))", "nothing accepts connections there"),
    ("HTTPConnectionPool(host='127.0.0.1', port=48969): Read timed out. (read timeout=10)", "it did not answer in time"),
    ("SSLError('certificate verify failed')", "SSLError('certificate verify failed')"),
])
def test_a_failing_tracking_server_is_named_with_the_reason(cause: str, why: str) -> None:
    assert tracking_failure(failed(cause)) == f"the tracking server at http://127.0.0.1:48969 is unavailable: {why}"


def test_other_errors_are_left_alone() -> None:
    assert tracking_failure(MlflowException("RESOURCE_DOES_NOT_EXIST: Run 'x' not found")) is None
    assert tracking_failure(ValueError("API request went fine")) is None
