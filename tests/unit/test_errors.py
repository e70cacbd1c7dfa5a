"""Errors stay one line even when they quote user input."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from mlscope.errors import NotFound, one_line
from mlscope.web.errors import install_error_handlers


def test_control_characters_are_escaped() -> None:
    assert one_line("run 'a\nb\tc\x00' not found") == "run 'a\\nb\\tc\\x00' not found"
    assert one_line("plain, ünïcode text") == "plain, ünïcode text"


def test_an_error_quoting_a_newline_is_one_line_in_the_api() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/runs/{run_id}")
    def run(run_id: str) -> None:
        raise NotFound(f"run '{run_id}' not found", field="run_id")

    answer = TestClient(app).get("/runs/%0Aevil")
    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": "not_found", "message": "run '\\nevil' not found", "field": "run_id"}}
