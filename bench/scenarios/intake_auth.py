"""Scenario "intake-auth": what authentication and the limits cost the intake, POST /v1/jobs → 202 at 500/s.

The intake alone (as in "intake-only") twice in each run: once behind a gateway with the
submission limit off (no key to check), once as deployed by default — every request carries an
API key checked against the key file, and the per-tenant token bucket runs (its default rate is
above the offered load, so nothing is refused: the row measures the checks, not a quota). Each is
one open-loop row at 500 jobs/s (and 200), latency from the scheduled send to the 202.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench import httpgen
from bench.http_ladder import HttpSystem, answered_ends, http_open_rows
from bench.jobrelay_kit import service
from bench.jobrelay_stack import COMMON_ENV
from bench.ladder import Labels
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.scenarios.jobrelay_http import NOOP_BODY, provisioned
from bench.topics import bench_topics
from jobrelay.security.keys import KeyFile, Scope

__all__ = ["SCENARIO", "IntakeAuthScenario"]

NAME = "intake-auth"
RATES = (200.0, 500.0)


class IntakeAuthScenario:
    """The intake's 202 latency with API keys and limits on, against off."""

    name = NAME

    def missing(self) -> str | None:
        """httpgen, or a C compiler to build it."""
        return httpgen.missing()

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """httpgen, topics, a key file with one key; each run starts the intake in each mode."""
        binary = await provisioned(ctx)
        with (
            tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp,
            bench_topics(ctx.kafka, f"{ctx.prefix}auth.", ctx.partitions) as topics,
        ):
            keys_file = Path(tmp) / "keys.json"
            key, _ = KeyFile(keys_file).add("bench", (Scope.SUBMIT,))
            modes = {
                "auth+limits off": ({**COMMON_ENV}, ()),
                "auth+limits on": (
                    {
                        **COMMON_ENV,
                        "JOBRELAY_AUTH": "keys",
                        "JOBRELAY_INTAKE_SUBMITS_PER_S": "1000",  # the default: above the offered load
                    },
                    (f"Authorization: Bearer {key}",),
                ),
            }

            async def run_once(run: int) -> list[Measurement]:
                rows: list[Measurement] = []
                for label, (mode_env, headers) in modes.items():
                    env = {
                        **mode_env,
                        "JOBRELAY_AUTH_KEYS_FILE": str(keys_file),
                        "JOBRELAY_INTAKE_IDEMPOTENCY_DB": str(Path(tmp) / f"idem-{run}-{len(rows)}.sqlite3"),
                    }
                    with service("intake", ctx.kafka, topics, Path(tmp), env) as intake:
                        ctx.log(f"{NAME} run {run}: {label}")
                        system = HttpSystem(
                            f"{intake.url}/v1/jobs", NOOP_BODY, intake.pid, answered_ends, headers=headers
                        )
                        labels = Labels(NAME, f"POST→202, {label}", "subject")
                        rows += await http_open_rows(
                            binary, system, labels, run, ctx.plan, Path(tmp) / "httpgen", RATES
                        )
                return rows

            yield run_once


SCENARIO = IntakeAuthScenario()
