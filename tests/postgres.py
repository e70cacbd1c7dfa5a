"""PostgreSQL test databases: each one fresh, uniquely named, dropped afterwards.

The server is the one at 127.0.0.1:5432 (user postgres, trust auth) unless MLSCOPE_TEST_POSTGRES gives
another admin connection string (libpq form, e.g. "postgresql://postgres@127.0.0.1:5432/postgres")."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_conninfo() -> str:
    return os.environ.get("MLSCOPE_TEST_POSTGRES", DEFAULT_ADMIN)


def unavailable_reason() -> str | None:
    """Why no test database can be made (one line), or None when PostgreSQL answers."""
    try:
        with psycopg.connect(admin_conninfo(), connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL not reachable at {admin_conninfo()}: {first}"
    return None


@contextmanager
def fresh_database(prefix: str = "mlscope_test") -> Iterator[str]:
    """Create an empty database and yield its SQLAlchemy URI (psycopg 3 driver); drop it on exit,
    closing any connection still open to it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        admin = make_url(admin_conninfo())
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def plain(uri: str) -> str:
    """postgresql+psycopg://... as users type it: postgresql://... (what MLflow and mlscope up are given)."""
    return uri.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def database_or_skip(prefix: str = "mlscope_test") -> Iterator[str]:
    """`fresh_database(prefix)`, or a skip with the reason when PostgreSQL does not answer (a failure
    under CI=true, see conftest)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with fresh_database(prefix) as uri:
        yield uri
