"""A private Redis for the peer: Debian's redis-server on 127.0.0.1, a free port, no persistence."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.procs import free_port, port_open, started, wait_until

__all__ = ["redis_missing", "redis_server"]

INSTALL = "apt-get update && apt-get install -y redis-server (Debian's package; the bench starts and stops it itself)"


def redis_missing() -> str | None:
    """How to install redis-server when it is not on PATH; None when it is."""
    return None if shutil.which("redis-server") else f"redis-server is not on PATH: {INSTALL}"


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Start redis-server, yield its redis:// URL, stop it by PID on exit."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError(redis_missing())
    port = free_port()
    cmd = [
        server, "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
        "--save", "", "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
    ]  # fmt: skip
    log = workdir / "redis.log"
    with started(cmd, log) as proc:
        wait_until(lambda: proc.poll() is not None or port_open(port), 15, "redis-server")
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        yield f"redis://127.0.0.1:{port}/0"
