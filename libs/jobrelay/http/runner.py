"""Run a service: uvloop as the event loop, and a FastAPI app under uvicorn with graceful SIGTERM.

uvicorn turns SIGTERM/SIGINT into a graceful exit: it stops accepting, lets in-flight requests
finish (up to `grace` seconds), then runs the app's lifespan shutdown, where each service stops
its consumer loop and flushes its producer. The process then exits 0: a graceful stop is a
success, not a death by signal.

Every service runs on uvloop and uvicorn's httptools parser (the `uvicorn[standard]` extras):
with asyncio's selector loop and the pure-Python h11 parser the HTTP path cost about twice the CPU.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn
import uvloop
from fastapi import FastAPI

from jobrelay.config.settings import HttpSettings
from jobrelay.http.protocol import HttpLimits, limited_protocol

__all__ = ["run_service", "serve", "server_config"]

T = TypeVar("T")


def run_service(main: Coroutine[Any, Any, T]) -> T:
    """Run a service's main coroutine to completion on a uvloop event loop."""
    return uvloop.run(main)


def server_config(
    app: Any, host: str, port: int, *, grace: float = 30.0, limits: HttpSettings | None = None
) -> uvicorn.Config:
    """uvicorn's configuration of a service: httptools with the request limits (`HttpSettings`)."""
    http = limits or HttpSettings()
    protocol = limited_protocol(HttpLimits(http.max_head_bytes, http.max_headers, http.body_timeout_s))
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(grace),
        lifespan="on",
        loop="none",  # the running loop (uvloop, from run_service) is used as it is
        http=protocol,
        ws="websockets-sansio",  # the `websockets` package; it pings each client and drops one that stops answering
        ws_max_size=64 * 1024,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
    )


async def serve(app: FastAPI, host: str, port: int, *, grace: float = 30.0, sock: socket.socket | None = None) -> None:
    """Serve `app` until SIGTERM/SIGINT; returns after the lifespan shut down.

    `sock`: listen on this bound socket instead of host:port (a worker of several sharing a port).
    """
    config = server_config(app, host, port, grace=grace)
    if threading.current_thread() is threading.main_thread():
        # uvicorn restores the previous handlers and re-raises the signal it handled once it has
        # shut down gracefully; with the default disposition that would end us with -15.
        for handled in (signal.SIGTERM, signal.SIGINT):
            signal.signal(handled, lambda *_: None)
    await uvicorn.Server(config).serve(sockets=None if sock is None else [sock])
