"""A PostgreSQL server of a test's own, which the test may stop and start at will.

The machine's PostgreSQL (127.0.0.1:5432) is shared and must never be disturbed, so failure tests that
take the database away start their own cluster instead: `initdb` + `pg_ctl` from the installed
PostgreSQL binaries, run as the `postgres` OS user (PostgreSQL refuses to run as root), in a temporary
folder owned by that user, on a free port of 127.0.0.1, with its socket in the same folder and trust
authentication. Nothing of it outlives the `own_postgres()` block.

    with own_postgres() as pg:      # started, with an empty database `mlflow`
        pg.uri                      # postgresql+psycopg://postgres@127.0.0.1:PORT/mlflow
        pg.stop()                   # pg_ctl stop -m fast
        pg.start()
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.live import free_port

OS_USER = "postgres"
DATABASE = "mlflow"


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder that has initdb and pg_ctl (Debian layout), or
    the folder of `pg_ctl` on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                        key=lambda p: [int(part) if part.isdigit() else 0 for part in Path(p).parent.name.split(".")],
                        reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if all(os.access(Path(folder) / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(folder)
    return None


def unavailable_reason() -> str | None:
    """Why this machine cannot run a PostgreSQL of the test's own (one line), or None."""
    if os.geteuid() != 0:
        return "starting a PostgreSQL of the test's own needs root (to run initdb/pg_ctl as the postgres user)"
    if shutil.which("runuser") is None:
        return "runuser not found: cannot run initdb/pg_ctl as the postgres user"
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        return f"no '{OS_USER}' OS user to run PostgreSQL as"
    if bin_dir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH"
    return None


class OwnPostgres:
    """One PostgreSQL cluster in `folder` (owned by the postgres user), listening on 127.0.0.1:`port`."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        found = bin_dir()
        if found is None:
            raise RuntimeError("PostgreSQL server binaries not found")
        self.bin = found
        self.folder = folder
        self.port = port or free_port()
        self.data = folder / "data"
        self.log = folder / "postgres.log"

    @property
    def admin_conninfo(self) -> str:
        return f"postgresql://{OS_USER}@127.0.0.1:{self.port}/postgres"

    @property
    def uri(self) -> str:
        """SQLAlchemy URI of the `mlflow` database (psycopg 3 driver, as tests/postgres.py)."""
        return f"postgresql+psycopg://{OS_USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = ["runuser", "-u", OS_USER, "--", str(self.bin / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.folder)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n"
                               f"{self.log_tail()}")
        return done

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def init(self) -> None:
        """initdb with trust authentication; settings for a throw-away test cluster."""
        self._run("initdb", "-D", str(self.data), "-U", OS_USER, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        settings = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port),
            "unix_socket_directories": f"'{self.folder}'",
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "shared_buffers": "32MB", "max_connections": "60",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/own_postgres.py\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self, timeout: float = 60) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(timeout)), "start",
                  timeout=timeout + 30)

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """pg_ctl stop -m `mode` (fast: disconnect the clients, roll back, shut down cleanly)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)), "stop",
                  timeout=timeout + 30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        command = ["runuser", "-u", OS_USER, "--", str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.admin_conninfo, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def create_database(self, name: str = DATABASE) -> None:
        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


@contextmanager
def own_postgres(port: int | None = None) -> Iterator[OwnPostgres]:
    """A started cluster with an empty `mlflow` database; stopped (immediate mode if need be) and its
    folder removed on exit. Call `unavailable_reason()` first to skip where it cannot run."""
    # Directly under /tmp: pytest's tmp_path lives in a root-only (0700) folder the postgres user
    # could not enter.
    folder = Path(tempfile.mkdtemp(prefix="mlscope-own-pg-"))
    user = pwd.getpwnam(OS_USER)
    os.chown(folder, user.pw_uid, user.pw_gid)
    server = OwnPostgres(folder, port)
    try:
        server.init()
        server.start()
        deadline = time.monotonic() + 30
        while not server.answers() and time.monotonic() < deadline:
            time.sleep(0.1)
        server.create_database()
        yield server
    finally:
        try:
            if server.data.exists() and server.running():
                try:
                    server.stop("fast", timeout=30)
                except (RuntimeError, subprocess.TimeoutExpired):
                    server.stop("immediate", timeout=30)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
