"""Property-based fuzzing of the dashboard's JSON API from its own OpenAPI schema (schemathesis): valid
and invalid inputs alike never get a 5xx (the store is up), errors come in the one error shape, and
successful answers match the documented schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from mlscope.web.app import create_app
from tests.conftest import Store, copy_of

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gets_a_server_error(trained: tuple[Store, object], tmp_path: Path, mode: GenerationMode) -> None:
    store = copy_of(trained[0], tmp_path / "fuzzed")  # fuzzed POSTs may move aliases
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(store.settings()))
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"GET /api/experiments", "GET /api/compare", "POST /api/models/{name}/aliases",
            "POST /api/runs/{run_id}/explanation/what-if"} <= paths
    statuses: list[int] = []
    unbreakable: list[str] = []

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (operation.path_parameters or operation.query or operation.body):
            continue  # nothing to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            response = case.call()
            statuses.append(response.status_code)
            where = f"{case.method} {case.formatted_path} {case.query!r} {case.body!r}"
            assert response.status_code < 500, f"{where} -> {response.text}"
            if response.status_code >= 400:
                error = response.json()["error"]
                assert set(error) == {"code", "message", "field"} and error["message"], where
                assert "\n" not in error["message"] and "Traceback" not in error["message"], where
            else:
                case.validate_response(response)

        try:
            check()
        except Unsatisfiable:  # every generated input is valid (e.g. a free-text path parameter only)
            assert mode is GenerationMode.NEGATIVE
            unbreakable.append(f"{operation.method.upper()} {operation.path}")
    assert len(unbreakable) < len(operations) // 2, unbreakable
    assert any(status < 300 for status in statuses) and any(400 <= status < 500 for status in statuses)
