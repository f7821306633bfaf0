"""httpgen, the compiled open-loop HTTP load generator of the HTTP scenarios (bench/httpgen/httpgen.c).

One C file (libc only: one thread, epoll, non-blocking keep-alive sockets), compiled with the
system's C compiler into `.cache/httpgen/<hash of its source>/httpgen` (rebuilt when the source
changes). `make httpgen` (a step of `make bench`) and the HTTP scenarios both call `provision()`.

Why not vegeta or Go: measured on the loaded 2-core machine against one intake, the three in turn
in the same minutes (4 s steps, 64 connections, 2 rounds), CPU per request and its share of the
intake's: at saturation vegeta v12.13.0 237-238 µs (14-16 %), a Go version of this generator
(standard library, GOMAXPROCS=1) 82-91 µs (5-6 %), this C one 46-50 µs (3.0 %); at 200 req/s
502-548 µs (19-22 %), 217-238 µs (8-10 %) and 80-102 µs (3.2-4.3 %). Go's runtime wakes itself
(sysmon, scheduler) between requests at light load; what the C one spends is the loopback socket
system calls.

`attack(...)` runs one step, open loop (`rate` > 0: request i is due at start + i/rate, whatever
happened to the earlier ones) or saturation (`rate` None: `connections` requests in flight), and
returns every request as a `Hit` with wall-clock due, sent and answered times; the process's own
user+system CPU comes from `wait4`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jobrelay.dev.localkafka import project_root

__all__ = ["Attack", "AttackResult", "HttpgenError", "Hit", "attack", "attack_args", "binary", "parse_csv", "provision"]

SOURCE = Path(__file__).with_name("httpgen")
_SOURCE_FILE = SOURCE / "httpgen.c"
_CFLAGS = ("-O2", "-Wall", "-Wextra", "-Werror")


class HttpgenError(RuntimeError):
    """httpgen could not be built or run."""


def _source_hash() -> str:
    digest = hashlib.sha256(_SOURCE_FILE.read_bytes())
    digest.update(" ".join(_CFLAGS).encode())
    return digest.hexdigest()[:12]


def binary(root: Path | None = None) -> Path:
    """Where the build of the current source lives (it may not exist yet)."""
    return (root or project_root()) / ".cache" / "httpgen" / _source_hash() / "httpgen"


def _compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def missing(root: Path | None = None) -> str | None:
    """Why httpgen cannot be had here (no build and no C compiler); None when it can."""
    if binary(root).is_file() or _compiler() is not None:
        return None
    return "the HTTP load generator (bench/httpgen) needs a C compiler: apt-get install -y gcc"


def provision(root: Path | None = None) -> Path:
    """The httpgen binary, compiled first unless this source's build is cached."""
    target = binary(root)
    if target.is_file():
        return target
    compiler = _compiler()
    if compiler is None:
        raise HttpgenError(missing(root) or "no C compiler")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    cmd = [compiler, *_CFLAGS, "-o", str(partial), str(_SOURCE_FILE)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise HttpgenError(f"compiling {_SOURCE_FILE} failed:\n{done.stderr[-3000:]}")
    partial.replace(target)  # whole or not at all
    return target


@dataclass(frozen=True, slots=True)
class Attack:
    """One load step: POST `body` to `url`, at `rate`/s or (None) as fast as `connections` allow."""

    url: str  # http://host:port/path
    body: bytes
    duration: float  # seconds of sending
    rate: float | None  # None: saturation
    connections: int  # keep-alive connections = requests in flight at most
    timeout_s: float = 30.0
    headers: tuple[str, ...] = ()  # "Name: value", sent with every request (e.g. an API key)


@dataclass(frozen=True, slots=True)
class Hit:
    """One request: wall-clock due, sent and answered times (s), status (0: failed), body's id."""

    seq: int
    due: float
    sent: float
    answered: float
    code: int
    job_id: str
    error: str


@dataclass(frozen=True, slots=True)
class AttackResult:
    """Every hit of a step, and what the generator process itself cost."""

    hits: tuple[Hit, ...]
    cpu_s: float  # httpgen's user + system CPU
    wall_s: float


def attack_args(spec: Attack, body: Path, output: Path) -> list[str]:
    """httpgen's arguments for `spec` (after the binary)."""
    address, _, path = spec.url.removeprefix("http://").partition("/")
    return [
        f"-addr={address}", f"-path=/{path}", f"-body={body}", f"-rate={spec.rate or 0:g}",
        f"-duration={spec.duration:g}s", f"-connections={spec.connections}", f"-timeout={spec.timeout_s:g}s",
        f"-out={output}", *(f"-header={h}" for h in spec.headers),
    ]  # fmt: skip


def _run_measured(cmd: Sequence[str], log: Path) -> float:
    """Run `cmd` to the end; its user+system CPU seconds (from wait4: this process only)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our binary, fixed argv
            list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise HttpgenError(f"httpgen exited with {proc.returncode}: {log.read_text(errors='replace')[-1500:]}")
    return usage.ru_utime + usage.ru_stime


def attack(generator: Path, spec: Attack, workdir: Path) -> AttackResult:
    """Run one step (blocking: call it in a thread) and parse its results."""
    workdir.mkdir(parents=True, exist_ok=True)
    body, output = workdir / "body.json", workdir / "results.csv"
    body.write_bytes(spec.body)
    started = time.perf_counter()
    cpu = _run_measured([str(generator), *attack_args(spec, body, output)], workdir / "httpgen.log")
    wall = time.perf_counter() - started
    hits = tuple(parse_csv(output.read_text()))
    output.unlink()
    return AttackResult(hits, cpu, wall)


def parse_csv(text: str) -> list[Hit]:
    """httpgen's lines `seq,due_ns,sent_ns,done_ns,status,id,"error"` → hits (times in seconds)."""
    hits = []
    for line in text.splitlines():
        if not line:
            continue
        seq, due, sent, done, code, job_id, error = line.split(",", 6)
        message = error[1:-1]  # quoted; httpgen's messages are fixed strings without quotes
        hits.append(Hit(int(seq), int(due) / 1e9, int(sent) / 1e9, int(done) / 1e9, int(code), job_id, message))
    return hits


def main() -> None:
    """`python -m bench.httpgen`: build httpgen unless it is cached; print where it is."""
    try:
        print(provision())
    except HttpgenError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
