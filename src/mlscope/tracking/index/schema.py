"""MLflow's tracking tables as mlscope reads them, the schema revisions checked against, and
read-only engines for SQLite and PostgreSQL stores."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

# Alembic heads whose runs / params / latest_metrics / tags / experiments tables and search
# semantics (sqlalchemy_store._search_runs) were checked against this module: MLflow 3.17.2.
VERIFIED_REVISIONS: frozenset[str] = frozenset({"dc11669786a5"})

SQLITE = "sqlite"
POSTGRES = "postgresql"

_metadata = sa.MetaData()

runs = sa.Table(
    "runs", _metadata,
    sa.Column("run_uuid", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(250)),
    sa.Column("user_id", sa.String(256)),
    sa.Column("status", sa.String(20)),
    sa.Column("start_time", sa.BigInteger),
    sa.Column("end_time", sa.BigInteger),
    sa.Column("lifecycle_stage", sa.String(20)),
    sa.Column("artifact_uri", sa.String(200)),
    sa.Column("experiment_id", sa.Integer),
)
latest_metrics = sa.Table(
    "latest_metrics", _metadata,
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("is_nan", sa.Boolean(create_constraint=False)),
    sa.Column("run_uuid", sa.String(32), primary_key=True),
)
params = sa.Table(
    "params", _metadata,
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.String(8000)),
    sa.Column("run_uuid", sa.String(32), primary_key=True),
)
tags = sa.Table(
    "tags", _metadata,
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.String(8000)),
    sa.Column("run_uuid", sa.String(32), primary_key=True),
)
experiments = sa.Table(
    "experiments", _metadata,
    sa.Column("experiment_id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(256)),
    sa.Column("workspace", sa.String(63)),
)
alembic_version = sa.Table("alembic_version", _metadata, sa.Column("version_num", sa.String(32)))

# The attribute columns MLflow maps search keys to (SqlRun.get_attribute_name).
ATTRIBUTE_COLUMNS = {"run_name": "name", "run_id": "run_uuid"}


class NotSqlStore(Exception):
    """The URI is no store this module reads with SQL (the reason is the message)."""


def sql_dialect(tracking_uri: str) -> str | None:
    """'sqlite' or 'postgresql' for the SQL stores read directly, else None."""
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0].lower()
    return scheme if scheme in (SQLITE, POSTGRES) else None


def read_only_engine(tracking_uri: str) -> Engine:
    """An engine that cannot write: SQLite opened with mode=ro and query_only, PostgreSQL sessions
    with default_transaction_read_only. SQLite also gets MLflow's own `case_sensitive_like`."""
    dialect = sql_dialect(tracking_uri)
    try:
        url = make_url(tracking_uri)
    except ArgumentError as exc:
        raise NotSqlStore(f"unparsable database URI: {exc}") from None
    if dialect == SQLITE:
        return _sqlite_engine(url.database)
    if dialect == POSTGRES:
        if url.drivername == POSTGRES and importlib.util.find_spec("psycopg2") is None:
            url = url.set(drivername="postgresql+psycopg")
        return sa.create_engine(url, connect_args={"options": "-c default_transaction_read_only=on"},
                                pool_size=4, max_overflow=4)
    raise NotSqlStore("not a sqlite:// or postgresql:// store")


def _sqlite_engine(database: str | None) -> Engine:
    if not database or database == ":memory:":
        raise NotSqlStore("in-memory SQLite store")
    path = Path(database).expanduser().resolve()
    if not path.is_file():
        raise NotSqlStore(f"no SQLite file at {path}")
    engine = sa.create_engine(f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true")

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA query_only = ON")
        cursor.execute("PRAGMA case_sensitive_like = true")
        cursor.close()

    return engine


def revision_problem(engine: Engine, accepted: frozenset[str]) -> str:
    """Why this store must not be read with SQL ('' when its recorded alembic revision is accepted)."""
    try:
        with engine.connect() as conn:
            revision = conn.execute(sa.select(alembic_version.c.version_num)).scalar_one_or_none()
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot read the schema revision ({first})"
    if revision not in accepted:
        return f"schema revision {revision!r} is not one mlscope verified ({', '.join(sorted(accepted)) or 'none'})"
    return ""
