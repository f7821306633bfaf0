"""Profile every jobrelay service under load with py-spy: `python -m bench.profile [--via http|publisher]`.

Starts intake, processor, projector and notifier (the bench's settings, `bench.jobrelay_stack`)
on fresh topics, submits no-op jobs as fast as they are accepted for `--seconds`, and meanwhile
records each service with `py-spy record --nonblocking --format raw` (collapsed stacks; idle
threads are not sampled). Prints, per service, CPU ms per job (from /proc) and the share of
samples in each cost category (`bench.profiling`), and leaves the raw stacks (and speedscope
files with `--speedscope`) in `--out`. Needs py-spy (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console

from bench.jobrelay_kit import HTTP_CONNECTIONS, completed_observer, http_client, http_submit, publish_submit
from bench.jobrelay_stack import SETTINGS_NOTE, stack
from bench.loadgen import CompletionLog, Submit, closed_loop
from bench.profiling import categorize, cpu_seconds, format_shares, read_collapsed
from bench.topics import bench_topics
from jobrelay.config.settings import KafkaSettings
from jobrelay.sdk.publisher import JobPublisher

__all__ = ["main"]


def _record(pid: int, out: Path, seconds: int, speedscope: bool) -> list[subprocess.Popen[bytes]]:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    base = [pyspy, "record", "--nonblocking", "-p", str(pid), "-d", str(seconds), "-r", "100", "--full-filenames"]
    runs = [[*base, "--format", "raw", "-o", str(out.with_suffix(".txt"))]]
    if speedscope:
        runs.append([*base, "--format", "speedscope", "-o", str(out.with_suffix(".speedscope.json"))])
    return [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for cmd in runs]  # noqa: S603


async def _load(submit: Submit, log: CompletionLog, seconds: float, in_flight: int) -> int:
    """Submit as fast as accepted for `seconds`; returns the jobs completed meanwhile (any job: the
    publisher leaves a backlog from the warm-up, and its completions are the work profiled)."""
    before = len(log.snapshot())
    await closed_loop(submit, log, count=1_000_000, timeout=seconds, max_in_flight=in_flight)
    return len(log.snapshot()) - before


async def _profile(via: str, seconds: int, out: Path, speedscope: bool) -> None:
    kafka, console = KafkaSettings(), Console()
    prefix = f"bench-{uuid.uuid4().hex[:8]}.prof."
    with (
        tempfile.TemporaryDirectory(prefix="jobrelay-profile-") as tmp,
        bench_topics(kafka, prefix, 6) as topics,
        stack(kafka, topics, Path(tmp), intake=True, notifier=True) as services,
    ):
        pids = {"intake": services.intake, "processor": services.processor, "projector": services.projector,
                "notifier": services.notifier}  # fmt: skip
        log = CompletionLog()
        async with http_client() as client, JobPublisher.connect(kafka, topics) as publisher:
            assert services.intake is not None  # noqa: S101 - asked for
            submit = http_submit(client, services.intake.url) if via == "http" else publish_submit(publisher)
            in_flight = HTTP_CONNECTIONS if via == "http" else 256
            async with completed_observer(kafka, topics, log):
                await _load(submit, log, 3, in_flight)  # warm-up: connections, group joins, caches
                cpu0 = {name: cpu_seconds(run.pid) for name, run in pids.items() if run}
                spies = [
                    p for name, run in pids.items() if run for p in _record(run.pid, out / name, seconds, speedscope)
                ]
                started = time.perf_counter()
                jobs = await _load(submit, log, seconds, in_flight)
                elapsed = time.perf_counter() - started
                cpu1 = {name: cpu_seconds(run.pid) for name, run in pids.items() if run}
                for spy in spies:
                    spy.wait(timeout=seconds + 60)
    console.print(
        f"[bold]{jobs:,} no-op jobs via {via} in {elapsed:.1f} s = {jobs / elapsed:,.0f} jobs/s[/]; {SETTINGS_NOTE}"
    )
    for name in pids:
        stacks = read_collapsed(out / f"{name}.txt")
        cpu_ms = (cpu1[name] - cpu0[name]) * 1000 / max(jobs, 1)
        console.print(f"\n[bold]{name}[/]: {cpu_ms:.2f} CPU ms per job, {sum(stacks.values()):,} samples")
        console.print(format_shares(categorize(stacks)))


def main() -> None:
    """Parse the arguments and profile."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--via", choices=("http", "publisher"), default="http")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "jobrelay-profiles")
    parser.add_argument("--speedscope", action="store_true", help="also write speedscope JSON")
    args = parser.parse_args()
    out = args.out / args.via
    out.mkdir(parents=True, exist_ok=True)
    asyncio.run(_profile(args.via, min(max(args.seconds, 5), 120), out, args.speedscope))


if __name__ == "__main__":
    main()
