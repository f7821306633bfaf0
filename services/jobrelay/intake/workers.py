"""Several intake processes on one port (SO_REUSEPORT): the kernel spreads connections among them.

Each worker is a whole intake (its own producer and in-flight map) and they share one
idempotency file (SQLite in WAL mode is safe for several processes). For Idempotency-Keys that
means: a retry that reaches another worker after the first request was answered is answered
from the shared file (the same job, no second record); concurrent requests with one key on two
workers can both miss the file and both write the record, under the same job id and request
hash, and the processor runs that job once (its dedupe by job id and hash), as for two replicas.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
from collections.abc import Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from jobrelay.config.settings import ObservabilitySettings
from jobrelay.intake.settings import IntakeSettings
from jobrelay.observability.logging import configure_logging, get_logger

__all__ = ["reuse_port_socket", "serve_workers"]

log = get_logger(__name__)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT (not listening yet)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def serve_workers(settings: IntakeSettings) -> int:
    """Run `settings.workers` intakes on one port until SIGTERM/SIGINT; returns the exit status.

    Fail fast: when one worker ends, the others are stopped too, so that the supervisor
    (systemd, Kubernetes) sees one process and restarts it whole.
    """
    holder = reuse_port_socket(settings.host, settings.port)  # keeps the port (0: picks one) for all
    port = holder.getsockname()[1]
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters: no threads forked mid-flight
    workers = [spawn.Process(target=_worker, args=(settings, port)) for _ in range(settings.workers)]
    for worker in workers:
        worker.start()
    stopped: set[int] = set()
    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, lambda *_: _stop(workers, stopped))
    observability = ObservabilitySettings()
    configure_logging("intake", observability.log_level, observability.log_format)
    log.info(f"intake running on http://{settings.host}:{port}", workers=settings.workers)
    wait([w.sentinel for w in workers])
    _stop(workers, stopped)
    for worker in workers:
        worker.join()
    holder.close()
    return max(abs(w.exitcode or 0) for w in workers)


def _stop(workers: Sequence[BaseProcess], stopped: set[int]) -> None:
    # One SIGTERM each: a worker finishes its requests and flushes; a second would cut that short.
    for worker in workers:
        if worker.is_alive() and worker.pid not in stopped:
            stopped.add(worker.pid or 0)
            worker.terminate()


def _worker(settings: IntakeSettings, port: int) -> None:
    from jobrelay.http import run_service
    from jobrelay.intake.main import run

    run_service(run(settings, sock=reuse_port_socket(settings.host, port)))
