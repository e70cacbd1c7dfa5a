"""Running one or more ASGI apps under uvicorn in this process, with the settings the benchmarks use."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

GRACEFUL_SHUTDOWN_SECONDS = 30


def server_config(app: Any, host: str, port: int) -> Any:
    """One process, uvloop + httptools, no access log; in-flight requests drain on Ctrl-C/SIGTERM."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools", access_log=False,
                          log_level="warning", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)


def run_servers(apps: list[tuple[Any, str, int]]) -> None:
    """Serve every (app, host, port) until interrupted; they share one event loop."""
    import uvicorn

    servers = [uvicorn.Server(server_config(app, host, port)) for app, host, port in apps]
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal: end with status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if len(servers) == 1:
        servers[0].run()
        return

    async def all_servers() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    import uvloop

    uvloop.run(all_servers())


def serve_socket(app: Any, sock: socket.socket, started: Callable[[], None]) -> None:
    """Serve `app` on a socket that is already listening (one worker of several) until SIGTERM/SIGINT,
    draining in-flight requests; `started()` is called once the app's startup has finished."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                started()

    host, port = sock.getsockname()[:2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # re-raised by uvicorn after the drain
    Server(server_config(app, host, port)).run(sockets=[sock])
