"""Several worker processes serving one listening socket (the pre-fork model).

The parent binds the port once, forks the workers (each inherits the socket, and the kernel hands
every new connection to one of the workers waiting on it), starts a new worker when one dies, and on
SIGTERM / Ctrl-C stops them all — each drains its in-flight requests — before it returns.

The parent only imports what the workers need before it forks: each worker starts with those modules
already loaded, and builds its own app, connections and threads, so nothing half-used (a pooled
database connection, a held lock) is copied into a child."""

from __future__ import annotations

import errno
import gc
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from mlscope.cli.servers import GRACEFUL_SHUTDOWN_SECONDS
from mlscope.errors import BadInput, MlscopeError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
BACKLOG = 2048  # uvicorn's default
KILL_AFTER_SECONDS = GRACEFUL_SHUTDOWN_SECONDS + 5  # workers drain for up to 30 s, then are killed
TICK_SECONDS = 0.2
PR_SET_PDEATHSIG = 1

Work = Callable[[int, socket.socket, Callable[[], None]], None]


class WorkerFailed(MlscopeError):
    """A worker ended before it was serving: it would fail the same way again, so all stop."""


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port that forked workers inherit; BadInput when that fails."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror}", field="host") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        why = "the port is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise BadInput(f"cannot listen on {host}:{port}: {why}", field="port") from None
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def ending(status: int) -> str:
    """How a process ended, from its wait status."""
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


@dataclass
class _Child:
    index: int
    pid: int
    ready_fd: int | None  # read end of the pipe the worker writes to once it serves; None once read
    serving: bool = False

    @property
    def name(self) -> str:
        return f"worker {self.index + 1} (pid {self.pid})"


class WorkerPool:
    """`count` forked workers serving `sock`. Each runs `work(index, sock, started)`, which builds its app,
    calls `started()` once it is serving and returns after SIGTERM/SIGINT (having drained).

    - A worker that dies after it was serving is reported and replaced by a new one.
    - A worker that ends before it was serving stops all: `run` raises WorkerFailed.
    - SIGTERM or SIGINT to the parent sends SIGTERM to every worker (a second SIGINT is passed on as
      SIGINT: uvicorn then stops without waiting); workers still running after the drain are killed.
    - `ended(pid)` is called for every worker that has ended, whatever the cause.
    """

    def __init__(self, sock: socket.socket, count: int, work: Work, *, ended: Callable[[int], None],
                 report: Callable[[str], None]) -> None:
        self.sock, self.count, self.work = sock, count, work
        self.ended, self.report = ended, report
        self.children: list[_Child] = []
        self.stopping = False
        self._kill_at = 0.0
        self._parent = os.getpid()

    def run(self) -> None:
        """Start the workers and keep them running until the parent is asked to stop."""
        self._parent = os.getpid()
        previous = {sig: signal.signal(sig, self._signalled) for sig in STOP_SIGNALS}
        failure: str | None = None
        try:
            gc.freeze()  # what the parent imported stays out of the workers' collections (copy-on-write)
            for index in range(self.count):
                self._fork(index)
            while self.children:
                self._note_started()
                for child, status in self._reap():
                    self.ended(child.pid)
                    if self.stopping:
                        continue
                    if not child.serving:
                        failure = f"{child.name} {ending(status)} before it was serving; stopped the others"
                        self.stop(signal.SIGTERM)
                    else:
                        self.report(f"{child.name} {ending(status)}; starting a new one")
                        self._fork(child.index)
                if self.stopping and time.monotonic() > self._kill_at:
                    self._signal_all(signal.SIGKILL)
        except BaseException:
            self.stop(signal.SIGTERM)
            self._kill_at = min(self._kill_at, time.monotonic() + 5)
            while self.children:
                for child, _ in self._reap():
                    self.ended(child.pid)
                if time.monotonic() > self._kill_at:
                    self._signal_all(signal.SIGKILL)
                time.sleep(TICK_SECONDS / 4)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.sock.close()
        if failure:
            raise WorkerFailed(failure)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop accepting in the parent and pass `sig` to every worker."""
        if not self.stopping:
            self.stopping = True
            self._kill_at = time.monotonic() + KILL_AFTER_SECONDS
            self.sock.close()  # once the workers have closed theirs too, new connections are refused
        self._signal_all(sig)

    def _signalled(self, signum: int, _frame: object) -> None:
        if os.getpid() != self._parent:  # a worker between fork and its own handlers: not ours to act on
            return
        again = self.stopping and signum == signal.SIGINT  # a second Ctrl-C: stop without draining
        self.stop(signal.SIGINT if again else signal.SIGTERM)

    def _signal_all(self, sig: int) -> None:
        for child in self.children:
            try:
                os.kill(child.pid, sig)
            except ProcessLookupError:
                pass

    def _fork(self, index: int) -> None:
        read_fd, write_fd = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        # No stop signal may reach the parent's handler inside the child before the child resets it.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(read_fd)
            os.close(write_fd)
            raise
        if pid == 0:
            os.close(read_fd)
            self._be_worker(index, write_fd, mask)  # never returns
        os.close(write_fd)
        self.children.append(_Child(index, pid, read_fd))
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a stop from now on reaches this worker too

    def _be_worker(self, index: int, ready_fd: int, mask: set[signal.Signals]) -> None:
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # while the app is built, SIGTERM just ends it
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for sibling in self.children:
                if sibling.ready_fd is not None:
                    os.close(sibling.ready_fd)
            self.children = []
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            _die_with(self._parent)

            def started() -> None:
                with suppress(BrokenPipeError):  # the parent is gone: the parent-death signal follows
                    os.write(ready_fd, b"1")
                os.close(ready_fd)

            self.work(index, self.sock, started)
            code = 0
        except KeyboardInterrupt:
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except BaseException:  # noqa: BLE001 - a bug: show it, end this worker only
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(code)  # never unwind into the parent's code (its cleanups belong to the parent)

    def _note_started(self) -> None:
        """Wait up to one tick for workers to say they are serving."""
        waiting = {child.ready_fd: child for child in self.children if child.ready_fd is not None}
        if not waiting:
            time.sleep(TICK_SECONDS)
            return
        readable, _, _ = select.select(list(waiting), [], [], TICK_SECONDS)
        for fd in readable:
            self._read_ready(waiting[fd])

    @staticmethod
    def _read_ready(child: _Child) -> None:
        assert child.ready_fd is not None
        child.serving = bool(os.read(child.ready_fd, 1))  # b"" when the worker ended without saying so
        os.close(child.ready_fd)
        child.ready_fd = None

    def _reap(self) -> list[tuple[_Child, int]]:
        ended = []
        for child in list(self.children):
            pid, status = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                self.children.remove(child)
                if child.ready_fd is not None:  # it may have said so and died within one tick
                    self._read_ready(child)
                ended.append((child, status))
        return ended


def _die_with(parent: int) -> None:
    """Linux: this worker gets SIGTERM when the parent dies, even by SIGKILL (no orphaned workers)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above
        os.kill(os.getpid(), signal.SIGTERM)
