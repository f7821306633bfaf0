"""202 latency and throughput of the intake for a burst of POSTs, against the real broker.

Starts `jobrelay intake` as its own process (JSON logs to a file, topics with a fresh prefix),
waits until it is ready, then fires a burst of POST /v1/jobs from C concurrent clients in this
process and prints p50/p90/p99 of the 202 latency and the requests/s. Half the requests carry an
Idempotency-Key (they also go through the SQLite key store).
Run: `python -m bench.intake_burst [--requests N] [--concurrency C]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.topics import ensure_topics


def start_intake(workdir: Path, prefix: str) -> tuple[subprocess.Popen[bytes], str]:
    """Run the intake on a free port; returns the process and its base URL once it answers."""
    log = workdir / "intake.log"
    env = os.environ | {
        "JOBRELAY_TOPICS_PREFIX": prefix,
        "JOBRELAY_LOG_FORMAT": "json",
        "JOBRELAY_INTAKE_IDEMPOTENCY_DB": str(workdir / "keys.sqlite3"),
    }
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "jobrelay.intake", "--port", "0"], env=env, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if match := re.search(r"running on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace")):
            url = match.group(1)
            if _ready(url):
                return process, url
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the intake did not become ready:\n{log.read_text()[-2000:]}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def burst(url: str, requests: int, concurrency: int) -> tuple[list[float], float]:
    """Latencies (s) of `requests` POSTs from `concurrency` clients, and the wall time."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for i in counter:
                headers = {"Idempotency-Key": str(uuid.uuid4())} if i % 2 else {}
                started = time.perf_counter()
                response = await http.post("/v1/jobs", json={"type": "bench.job", "payload": {"i": i}}, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 202:
                    raise SystemExit(f"unexpected {response.status_code}: {response.text}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", default="1,50", help="comma-separated client counts, one burst each")
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    ensure_topics(KafkaSettings(), TopicSettings(prefix=prefix))
    with tempfile.TemporaryDirectory() as workdir:
        process, url = start_intake(Path(workdir), prefix)
        table = Table(title=f"intake: bursts of {args.requests} POST /v1/jobs (202 after acks=all), real broker")
        for column in ("clients", "requests/s", "p50 ms", "p90 ms", "p99 ms", "max ms"):
            table.add_column(column, justify="right")
        try:
            asyncio.run(burst(url, 200, 10))  # warm-up
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                latencies, wall = asyncio.run(burst(url, args.requests, concurrency))
                table.add_row(str(concurrency), *row(latencies, wall))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    Console().print(table)


def row(latencies: list[float], wall: float) -> list[str]:
    """requests/s and latency percentiles, formatted."""
    cuts = statistics.quantiles(latencies, n=100)
    return [
        f"{len(latencies) / wall:,.0f}",
        f"{cuts[49] * 1000:.1f}",
        f"{cuts[89] * 1000:.1f}",
        f"{cuts[98] * 1000:.1f}",
        f"{max(latencies) * 1000:.1f}",
    ]


if __name__ == "__main__":
    main()
