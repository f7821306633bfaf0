"""What a scenario is, what it measures, and the knobs every scenario reads.

A scenario is a named thing the runner can run several times: `open(ctx)` starts whatever it
needs (a Redis server, a worker, topics) and yields a `RunOnce`; the runner calls it once per run
and then leaves the context, which stops everything by PID. Each run returns `Measurement` rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from bench.stats import LatencyStats
from jobrelay.config.settings import KafkaSettings

__all__ = ["BenchContext", "Measurement", "Mode", "Plan", "Role", "RunOnce", "Scenario"]

# limit: raw Kafka, the physical ceiling; peer: what people would otherwise use (Celery);
# subject: jobrelay itself; info: context rows without ratios (client CPU per message).
Role = Literal["limit", "peer", "subject", "info"]
# saturation: closed loop, sustained throughput; open: fixed offered load, latency from the
# scheduled send time; latency: a tool's own latency test (one record at a time).
Mode = Literal["saturation", "open", "latency"]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One row of the table: one case of one scenario in one run."""

    scenario: str
    case: str
    role: Role
    mode: Mode
    run: int
    throughput: float | None  # per second: records, messages or jobs
    latency: LatencyStats | None  # ms
    offered: float | None = None  # jobs/s on the open-loop schedule
    completed: int = 0
    lost: int = 0  # planned but never seen complete (or never sent)
    kept_up: bool | None = None  # open loop: did the system keep up with the offered load?
    notes: str = ""
    # A limit row other rows are divided by: ProducerPerformance for throughput, the aiokafka
    # loop's open-loop rows for p99 at each offered load (see bench.ratios).
    reference: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """How much load: counts and durations; `quick()` is for development runs."""

    # The closed loop submits about this many seconds of work at the rate the warm-up reached,
    # so fast and slow systems are both measured long enough to amortise start-up.
    saturation_s: float = 10.0
    min_saturation_jobs: int = 1_000
    # Submits in flight at once in the closed loop: enough for an HTTP intake to be busy, few
    # enough that thousands of tasks do not all wake on every freed producer batch (aiokafka
    # slows ~10x with 10,000 senders waiting on its accumulator).
    saturation_in_flight: int = 256
    open_rates: tuple[float, ...] = (200, 500, 1_000)  # always run, so every system has these rows
    max_rate: float = 16_000  # keep doubling past the last fixed rate while the system keeps up
    open_duration: float = 5.0  # seconds of sending per offered load
    max_jobs_per_step: int = 50_000
    drain_timeout: float = 10.0  # seconds to wait for the last completions
    warmup_jobs: int = 500
    tool_records: int = 200_000  # ProducerPerformance
    latency_records: int = 2_000  # EndToEndLatency, one round trip at a time
    # keeps up: every job completes, >= 95% of the offered rate is achieved and p99 <= this
    keep_up_p99_ms: float = 1_000.0

    @classmethod
    def quick(cls) -> Plan:
        """Small counts and short durations, for development."""
        return cls(
            saturation_s=2.0,
            min_saturation_jobs=500,
            max_rate=2_000,
            open_duration=1.0,
            max_jobs_per_step=5_000,
            drain_timeout=5.0,
            warmup_jobs=100,
            tool_records=20_000,
            latency_records=200,
        )


@dataclass(frozen=True, slots=True)
class BenchContext:
    """What every scenario gets: the cluster, a unique topic prefix, the plan and the run count."""

    kafka: KafkaSettings
    prefix: str  # unique per bench invocation, so the shared broker's other topics are untouched
    plan: Plan
    quick: bool
    runs: int = 2
    partitions: int = 6  # of every topic the bench creates, limit and jobrelay alike
    log: Callable[[str], None] = field(default=print)


RunOnce = Callable[[int], Awaitable[list[Measurement]]]


class Scenario(Protocol):
    """A benchmark the runner can run: its name, its role, its prerequisites and its runs."""

    @property
    def name(self) -> str:
        """Unique name, used by `--only`."""
        ...

    def missing(self) -> str | None:
        """What this machine lacks to run it, and how to install it; None when ready."""
        ...

    def open(self, ctx: BenchContext) -> AbstractAsyncContextManager[RunOnce]:
        """Start what the scenario needs; yield the function that does one run; stop it all on exit."""
        ...
