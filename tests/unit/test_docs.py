"""The README documents every setting and every command."""

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
