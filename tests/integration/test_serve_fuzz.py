"""Property-based fuzzing of the prediction API from its own OpenAPI schema (schemathesis): valid and
invalid inputs alike never get a 5xx, and every answer matches the documented schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from mlscope.serving.app import build_api
from tests.conftest import Store
from tests.integration.test_serve import served_store  # noqa: F401 - the fixture, shared

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gets_a_server_error(served_store: Store, mode: GenerationMode) -> None:  # noqa: F811
    schema = schemathesis.openapi.from_asgi("/openapi.json", build_api(served_store.settings(max_batch_rows=50)))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"POST /predict", "POST /predict/batch"}
    statuses: list[int] = []

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # nothing to get wrong in a GET without parameters

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            response = case.call()
            statuses.append(response.status_code)
            assert response.status_code < 500, f"{case.method} {case.path} {case.body!r} -> {response.text}"
            case.validate_response(response)

        check()
    expected = {200} if mode is GenerationMode.POSITIVE else {422}
    assert expected <= set(statuses)
