"""`mlscope promote` and `mlscope history`: move aliases with an audit trail, and read it back."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mlscope.cli.common import console, settings_of, user_errors
from mlscope.errors import BadInput


def promote(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number to point the alias at.")],
    alias: Annotated[str, typer.Option(help="Alias to set or move.")] = "production",
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")] = "",
    by: Annotated[str | None, typer.Option(help="Who (default: the current user).")] = None,
) -> None:
    """Point an alias at a model version and record who, when and why."""
    from mlscope.tracking import registry
    from mlscope.tracking.client import make_client

    settings = settings_of(ctx)
    with user_errors():
        if not version.isdigit():
            raise BadInput(f"version must be a number, got '{version}'", field="version")
        event = registry.set_alias(make_client(settings), model, alias, version,
                                   by=by or settings.user, reason=reason or "manual promotion")
    was = f" (was version {event.previous_version})" if event.previous_version else ""
    console.print(f"{model}@{alias} → version {event.version}{was}; recorded by {event.by} at {event.at}")


def history(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Registered model name.")],
) -> None:
    """Show the alias audit trail of a registered model."""
    from mlscope.tracking import registry
    from mlscope.tracking.client import make_client

    settings = settings_of(ctx)
    with user_errors():
        events = registry.alias_history(make_client(settings), model)
    table = Table(title=f"Alias history of '{model}'", title_justify="left", header_style="bold")
    for header in ("when (UTC)", "alias", "action", "from", "to", "by", "reason"):
        table.add_column(header)
    for e in events:
        to = "—" if e.action == "remove" else e.version
        table.add_row(e.at, e.alias, e.action, e.previous_version or "—", to, e.by, e.reason)
    console.print(table)
