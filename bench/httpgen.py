"""httpgen, the compiled open-loop HTTP load generator of the HTTP scenarios (bench/httpgen/main.go).

A Go program of the standard library only, built with the Go toolchain into
`.cache/httpgen/<hash of its source>/httpgen` (rebuilt when the source changes; no module is
fetched). `make httpgen` (a step of `make bench`) and the HTTP scenarios both call `provision()`.

Why not vegeta: measured here against the same intake in the same minutes (2 cores, loaded),
vegeta v12.13.0 cost 320 µs CPU per request at saturation and 620-640 µs at 200 req/s; httpgen
90-120 µs and 210-340 µs. It writes one pre-built request per send and parses only the status
line, Content-Length and the body's "id", so nearly all of its CPU is the socket system calls.

`attack(...)` runs one step, open loop (`rate` > 0: request i is due at start + i/rate, whatever
happened to the earlier ones) or saturation (`rate` None: `connections` requests in flight), and
returns every request as a `Hit` with wall-clock due, sent and answered times; the process's own
user+system CPU comes from `wait4`.
"""

from __future__ import annotations

import ast
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
_GO_FALLBACK = Path("/usr/local/go/bin/go")  # Go's own tarball installs here, often off PATH
# One P: at light load each request wakes the process, and with more Ps the Go scheduler spins
# idle threads looking for work (measured: 306 → 211 µs CPU per request at 200 req/s).
_ENV = {"GOMAXPROCS": "1"}


class HttpgenError(RuntimeError):
    """httpgen could not be built or run."""


def _source_hash() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "main.go"):
        digest.update((SOURCE / name).read_bytes())
    return digest.hexdigest()[:12]


def binary(root: Path | None = None) -> Path:
    """Where the build of the current source lives (it may not exist yet)."""
    return (root or project_root()) / ".cache" / "httpgen" / _source_hash() / "httpgen"


def _go() -> str | None:
    found = shutil.which("go")
    return found or (str(_GO_FALLBACK) if _GO_FALLBACK.is_file() else None)


def missing(root: Path | None = None) -> str | None:
    """Why httpgen cannot be had here (no build and no Go toolchain); None when it can."""
    if binary(root).is_file() or _go() is not None:
        return None
    return "the HTTP load generator (bench/httpgen) is built with Go: install Go >= 1.19 (https://go.dev/doc/install)"


def provision(root: Path | None = None) -> Path:
    """The httpgen binary, built with `go build` first unless this source's build is cached."""
    target = binary(root)
    if target.is_file():
        return target
    go = _go()
    if go is None:
        raise HttpgenError(missing(root) or "no Go toolchain")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    cmd = [go, "build", "-trimpath", "-o", str(partial), "."]
    done = subprocess.run(cmd, env=env, cwd=SOURCE, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise HttpgenError(f"go build of {SOURCE} failed:\n{done.stderr[-3000:]}")
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
        f"-out={output}",
    ]  # fmt: skip


def _run_measured(cmd: Sequence[str], log: Path) -> float:
    """Run `cmd` to the end; its user+system CPU seconds (from wait4: this process only)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our binary, fixed argv
            list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=os.environ | _ENV
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
        message = "" if error == '""' else str(ast.literal_eval(error))  # Go's strconv.Quote
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
