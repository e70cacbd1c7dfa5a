"""What the benchmark scripts share: a free port, git facts about the checkout, the command that ran."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def git(*args: str) -> str:
    """`git ARGS` in the repository, its stdout stripped ('' when git fails)."""
    return subprocess.run(["git", *args], check=False, capture_output=True, text=True, cwd=REPOSITORY).stdout.strip()


def command_line() -> str:
    """The command that started this script, with the interpreter relative to here when it is below."""
    python = os.path.relpath(sys.executable)
    return shlex.join([python if not python.startswith("..") else sys.executable, *sys.argv])
