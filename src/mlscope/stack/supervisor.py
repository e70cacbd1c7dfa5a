"""Child processes of `mlscope up`: start each, wait until its health URL answers, watch, stop all.

Each child runs in its own session (process group), so stopping it reaches the workers it forks and a
Ctrl-C in the terminal reaches only `mlscope up`, which then stops the children in reverse order."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mlscope.errors import MlscopeError

STOP_SECONDS = 35.0  # uvicorn drains in-flight requests for up to 30 s on SIGTERM
POLL_SECONDS = 0.2


class ComponentFailed(MlscopeError):
    """A child did not come up, or died; carries the end of its log."""

    def __init__(self, name: str, reason: str, log: Path) -> None:
        super().__init__(f"{name} {reason} (log: {log})")
        self.name = name
        self.log = log

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)


@dataclass
class Component:
    """One child: its argv, extra environment, health URL and log file."""

    name: str
    argv: list[str]
    health_url: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None


def tail(log: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own http URL
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Supervisor:
    """Starts components one after another and stops them all, newest first."""

    def __init__(self, base_env: dict[str, str] | None = None) -> None:
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.components: list[Component] = []

    def start(self, component: Component, ready_seconds: float) -> float:
        """Spawn `component` and return the seconds until its health URL answered 200. Raises
        ComponentFailed when it exits first or `ready_seconds` pass."""
        component.log.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with component.log.open("ab") as out:
            component.process = subprocess.Popen(
                component.argv, env={**self.base_env, **component.env}, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.components.append(component)
        deadline = started + ready_seconds
        while True:
            if healthy(component.health_url):
                return time.monotonic() - started
            code = component.process.poll()
            if code is not None:
                raise ComponentFailed(component.name, f"exited with status {code} before it was healthy",
                                      component.log)
            if time.monotonic() > deadline:
                raise ComponentFailed(component.name, f"did not answer {component.health_url} within "
                                      f"{ready_seconds:.0f} s", component.log)
            time.sleep(POLL_SECONDS)

    def check(self) -> None:
        """Raise ComponentFailed for the first component that is no longer running."""
        for component in self.components:
            code = component.process.poll() if component.process is not None else None
            if code is not None:
                raise ComponentFailed(component.name, f"exited with status {code}", component.log)

    def wait(self) -> None:
        """Block until a component dies (then raise ComponentFailed) or the caller is interrupted."""
        while True:
            self.check()
            time.sleep(POLL_SECONDS * 2)

    def stop_all(self, seconds: float = STOP_SECONDS) -> list[str]:
        """SIGTERM every component's process group, newest first; SIGKILL what is left after `seconds`.
        Returns the names that had to be killed."""
        killed = []
        for component in reversed(self.components):
            process = component.process
            if process is None:
                continue
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                killed.append(component.name)
            _signal_group(process, signal.SIGKILL)  # stragglers of its group (forked workers)
            process.wait()
        self.components.clear()
        return killed


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
