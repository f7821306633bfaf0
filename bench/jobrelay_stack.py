"""The jobrelay services as the end-to-end scenarios run them: one process each, tuned for throughput.

`stack(...)` starts the processor and the projector (and the intake when asked) with
`bench.jobrelay_kit.service`, each on a free port with the bench's topics, and stops them by PID.
The settings are fixed here, in one place, and printed in every row's notes (`SETTINGS_NOTE`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from bench.jobrelay_kit import Running, service
from bench.scenario import Measurement
from jobrelay.config.settings import KafkaSettings, TopicSettings

__all__ = ["COMMON_ENV", "PROCESSOR_ENV", "SETTINGS_NOTE", "Stack", "settings_note", "stack", "with_settings"]

# Every service: INFO logs would write a line per request or job to the service's log file; the
# bench measures the pipeline, so WARNING (the profile in bench/PROFILE.md shows what INFO costs).
# The bench's load is one client: it runs behind a "gateway" (no API keys) with the per-tenant rate
# limits off, so the rows measure the pipeline, not a quota; what the checks cost is a row of its own.
COMMON_ENV: Mapping[str, str] = {
    "JOBRELAY_LOG_LEVEL": "WARNING",
    "JOBRELAY_LOG_FORMAT": "json",
    "JOBRELAY_AUTH": "gateway",
    "JOBRELAY_INTAKE_SUBMITS_PER_S": "0",
    "JOBRELAY_PROJECTOR_READS_PER_S": "0",
}

# The processor, tuned for no-op throughput: many jobs at once (the default, 64, is sized for real
# work), about the most the per-partition ledger allows to be pending (150 is the field's bound, but
# with the default max_window=5000 the commit metadata check refuses more than 145), and group commit
# (the default: a transaction starts when the previous one ends; a 50-100 ms linger cost ~200 ms of latency
# per job, two transactions each, and gained no throughput).
PROCESSOR_ENV: Mapping[str, str] = {
    "JOBRELAY_PROCESSOR_HANDLER_MODULES": "bench.noop",
    "JOBRELAY_PROCESSOR_MAX_IN_FLIGHT": "1000",
    "JOBRELAY_PROCESSOR_MAX_PENDING_PER_PARTITION": "140",
    "JOBRELAY_PROCESSOR_COMMIT_INTERVAL_S": "0",
}


def settings_note(env: Mapping[str, str] = PROCESSOR_ENV) -> str:
    """The processor settings in short form, e.g. `in_flight=1000 pending/part=150 commit=0.1s`."""
    short = {
        "JOBRELAY_PROCESSOR_MAX_IN_FLIGHT": "in_flight={}",
        "JOBRELAY_PROCESSOR_MAX_PENDING_PER_PARTITION": "pending/part={}",
        "JOBRELAY_PROCESSOR_COMMIT_INTERVAL_S": "commit={}s",
    }
    return " ".join(template.format(env[name]) for name, template in short.items() if name in env)


SETTINGS_NOTE = settings_note()


def with_settings(rows: list[Measurement]) -> list[Measurement]:
    """The rows, the saturation ones with the processor settings appended to their notes."""
    return [replace(row, notes=f"{row.notes}; {SETTINGS_NOTE}") if row.mode == "saturation" else row for row in rows]


@dataclass(frozen=True, slots=True)
class Stack:
    """The running services, and where the projector keeps its view."""

    processor: Running
    projector: Running
    view_db: Path
    intake: Running | None = None
    notifier: Running | None = None


@contextmanager
def stack(
    kafka: KafkaSettings,
    topics: TopicSettings,
    workdir: Path,
    *,
    intake: bool = False,
    notifier: bool = False,
    group: str = "bench",
    handlers: str | None = None,
) -> Iterator[Stack]:
    """Start processor, projector (and intake, notifier); yield them; stop them all by PID on exit.

    `handlers`: the processor's handler modules instead of `bench.noop` (comma-separated).
    """
    view_db = workdir / "view.sqlite"
    processor_env = {
        **COMMON_ENV,
        **PROCESSOR_ENV,
        "JOBRELAY_PROCESSOR_GROUP_ID": f"{topics.prefix}{group}-processor",
        "JOBRELAY_PROCESSOR_TRANSACTIONAL_ID_PREFIX": f"{topics.prefix}{group}-processor",
    }
    if handlers is not None:
        processor_env["JOBRELAY_PROCESSOR_HANDLER_MODULES"] = handlers
    projector_env = {**COMMON_ENV, "JOBRELAY_PROJECTOR_DB_PATH": str(view_db)}
    with ExitStack() as services:
        processor = services.enter_context(service("processor", kafka, topics, workdir, processor_env))
        projector = services.enter_context(service("projector", kafka, topics, workdir, projector_env))
        intake_run = notifier_run = None
        if intake:
            intake_env = {**COMMON_ENV, "JOBRELAY_INTAKE_IDEMPOTENCY_DB": str(workdir / "keys.sqlite3")}
            intake_run = services.enter_context(service("intake", kafka, topics, workdir, intake_env))
        if notifier:
            notifier_env = {**COMMON_ENV, "JOBRELAY_NOTIFIER_GROUP_ID": f"{topics.prefix}{group}-notifier"}
            notifier_run = services.enter_context(service("notifier", kafka, topics, workdir, notifier_env))
        yield Stack(processor, projector, view_db, intake_run, notifier_run)
