"""Property-based fuzzing of the feedback routes from the API's own OpenAPI schema (schemathesis), with
predictions logged so that feedback can succeed: valid and invalid bodies never get a 5xx, every answer
matches the documented schema, and a refused request records nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from mlscope.monitoring import store
from mlscope.serving.app import build_api
from tests.conftest import Store
from tests.integration.test_serve import THIRD_CLASS_MAN, served_store  # noqa: F401 - the fixture, shared

pytestmark = pytest.mark.slow

FEEDBACK_ROUTES = {"POST /feedback", "POST /feedback/batch"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_feedback_gets_a_server_error(served_store: Store, tmp_path: Path,  # noqa: F811
                                         mode: GenerationMode) -> None:
    app = build_api(served_store.settings(monitor_dir=tmp_path, max_batch_rows=50))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [op for op in (result.ok() for result in schema.get_all_operations())
                  if f"{op.method.upper()} {op.path}" in FEEDBACK_ROUTES]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == FEEDBACK_ROUTES
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            response = case.call()
            statuses.append(response.status_code)
            assert response.status_code < 500, f"{case.method} {case.path} {case.body!r} -> {response.text}"
            case.validate_response(response)

        check()
    assert ({200, 404} if mode is GenerationMode.POSITIVE else {422}) <= set(statuses)


def test_feedback_for_logged_predictions_takes_exactly_the_valid_truths(served_store: Store,  # noqa: F811
                                                                         tmp_path: Path) -> None:
    values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False),
                       st.text(max_size=3), st.sampled_from(["0", "1", 0, 1, 0.0, 1.0]))
    accepted: dict[str, str] = {}
    with TestClient(build_api(served_store.settings(monitor_dir=tmp_path))) as api:
        ids = iter([a["request_id"] for a in api.post("/predict/batch", json=[THIRD_CLASS_MAN] * 300).json()])

        @given(actual=values)
        @settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def check(actual: object) -> None:
            request_id = next(ids)
            reply = api.post("/feedback", json={"request_id": request_id, "actual": actual})
            valid = type(actual) is not bool and actual in (0, 1, "0", "1")
            assert reply.status_code == (200 if valid else 422), (actual, reply.text)
            if valid:
                assert reply.json()["actual"] == str(int(actual))  # type: ignore[call-overload]
                accepted[request_id] = reply.json()["actual"]
            else:
                assert reply.json()["error"]["field"] == "actual"

        check()
    recorded = store.feedback(tmp_path, "titanic-survival")
    assert dict(zip(recorded.column("request_id").to_pylist(), recorded.column("actual").to_pylist())) == accepted
    assert accepted  # the valid truths were drawn too
