"""The broker's own tools from kafka-tools: ProducerPerformance and EndToEndLatency.

The jars are the ones `LocalKafka.provision()` fetches into the checkout's cache, so a clean
checkout works; the tools log to stderr at WARN with the bench's own log4j2 file, and their
result lines on stdout are parsed here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.stats import LatencyStats
from jobrelay.dev.localkafka import LocalKafka

__all__ = ["EndToEnd", "ProducerPerf", "end_to_end_latency", "parse_end_to_end", "parse_producer_perf", "producer_perf"]

LOG4J = Path(__file__).with_name("kafka-tools-log4j2.yaml")
PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
END_TO_END_LATENCY = "org.apache.kafka.tools.EndToEndLatency"

_PERF = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)
_E2E_AVG = re.compile(r"Avg latency: (?P<avg>[\d.]+) ms")
_E2E_PCT = re.compile(r"Percentiles: 50th = (?P<p50>[\d.]+), 99th = (?P<p99>[\d.]+), 99.9th = (?P<p999>[\d.]+)")


class ToolError(RuntimeError):
    """A Kafka tool failed or printed something we cannot read."""


@dataclass(frozen=True, slots=True)
class ProducerPerf:
    """ProducerPerformance's summary: records/s and produce→ack latency."""

    records: int
    records_per_s: float
    latency: LatencyStats


@dataclass(frozen=True, slots=True)
class EndToEnd:
    """EndToEndLatency's summary: one record at a time, produce→consume."""

    records: int
    latency: LatencyStats


def parse_producer_perf(output: str) -> ProducerPerf:
    """The final summary line of ProducerPerformance (the one with percentiles)."""
    matches = list(_PERF.finditer(output))
    if not matches:
        raise ToolError(f"no ProducerPerformance summary in:\n{output[-2000:]}")
    m = matches[-1]
    latency = LatencyStats(
        count=int(m["records"]),
        p50=float(m["p50"]),
        p95=float(m["p95"]),
        p99=float(m["p99"]),
        max=float(m["max"]),
        mean=float(m["avg"]),
    )
    return ProducerPerf(int(m["records"]), float(m["rate"]), latency)


def parse_end_to_end(output: str, records: int) -> EndToEnd:
    """EndToEndLatency's 'Avg latency' and 'Percentiles' lines (it reports no p95 or max)."""
    avg, pct = _E2E_AVG.search(output), _E2E_PCT.search(output)
    if avg is None or pct is None:
        raise ToolError(f"no EndToEndLatency summary in:\n{output[-2000:]}")
    latency = LatencyStats(
        count=records, p50=float(pct["p50"]), p95=None, p99=float(pct["p99"]), max=None, mean=float(avg["avg"])
    )
    return EndToEnd(records, latency)


def _java(kafka: LocalKafka, main: str, *args: str) -> list[str]:
    kafka.provision()
    java = shutil.which("java")
    if java is None:
        raise ToolError("a Java runtime (17+) is needed for the Kafka tools; install openjdk-17-jre-headless")
    return [java, "-Xms128m", "-Xmx512m", f"-Dlog4j2.configurationFile={LOG4J}", "-cp", f"{kafka.libs}/*", main, *args]


def _run(cmd: list[str], timeout: float) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills the child on timeout
        raise ToolError(f"{cmd[-1]} … did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise ToolError(
            f"{' '.join(cmd[6:8])} exited with {done.returncode}:\n{done.stdout[-1000:]}{done.stderr[-2000:]}"
        )
    return done.stdout


def producer_perf(
    kafka: LocalKafka, bootstrap: str, topic: str, records: int, record_size: int, timeout: float = 180.0
) -> ProducerPerf:
    """ProducerPerformance at full speed (throughput -1) with acks=all and idempotence."""
    cmd = _java(
        kafka, PRODUCER_PERFORMANCE, "--bootstrap-server", bootstrap, "--topic", topic,
        "--num-records", str(records), "--record-size", str(record_size), "--throughput", "-1",
        "--command-property", "acks=all", "enable.idempotence=true",
    )  # fmt: skip
    return parse_producer_perf(_run(cmd, timeout))


def end_to_end_latency(
    kafka: LocalKafka, bootstrap: str, topic: str, records: int, record_size: int, timeout: float = 180.0
) -> EndToEnd:
    """EndToEndLatency: produce one record (acks=all), consume it, repeat `records` times."""
    cmd = _java(
        kafka, END_TO_END_LATENCY, "--bootstrap-server", bootstrap, "--topic", topic,
        "--num-records", str(records), "--producer-acks", "all", "--record-size", str(record_size),
    )  # fmt: skip
    return parse_end_to_end(_run(cmd, timeout), records)
