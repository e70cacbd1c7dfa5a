"""The README documents every setting, every command and every route of both apps."""

from __future__ import annotations

from pathlib import Path

from mlscope.cli import app
from mlscope.config import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_has_its_variable_in_the_readme() -> None:
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", None)
        names = list(aliases) if aliases else [f"MLSCOPE_{name.upper()}"]
        assert any(f"`{var}`" in README or f"{var}`" in README for var in names), name


def test_every_command_is_in_the_readme() -> None:
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert commands
    for command in commands:
        assert f"  {command} " in README, command


def test_readme_starts_with_the_two_commands() -> None:
    head = README[:600]
    assert "make demo" in head and "make test" in head


def _routes(app: object) -> list[str]:
    spec = app.openapi()  # type: ignore[attr-defined]
    return [f"{method.upper()} {path}" for path, operations in spec["paths"].items() for method in operations]


def test_every_dashboard_route_is_in_the_readme(tmp_path: Path) -> None:
    from mlscope.web.app import create_app

    routes = _routes(create_app(Settings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")))
    assert "GET /api/compare" in routes
    for route in routes:
        assert f"`{route}`" in README, route


def test_every_prediction_route_is_in_the_readme(tmp_path: Path) -> None:
    from mlscope.serving.app import build_api

    routes = _routes(build_api(Settings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")))
    assert "POST /predict" in routes
    for route in routes:
        assert f"`{route}`" in README or f"`{route.split()[1]}`" in README, route
