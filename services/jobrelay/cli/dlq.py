"""`jobrelay dlq list|replay`: inspect job-dlq and re-publish dead letters after a fix."""

from __future__ import annotations

import asyncio
import json

import typer
from rich.console import Console
from rich.table import Table

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.clients import make_codec, make_producer
from jobrelay.messaging.dlq import DeadLetter, Replayed, read_dead_letters, replay

__all__ = ["dlq_app"]

dlq_app = typer.Typer(help="The dead-letter topic (job-dlq).", no_args_is_help=True)
console = Console()

REASON = typer.Option(None, "--reason", help="Only this reason, e.g. RETRIES_EXHAUSTED or UNDECODABLE.")
STAGE = typer.Option(None, "--stage", help="Only letters from this stage: processor, projector, notifier, intake.")


def _select(reason: str | None, stage: str | None) -> list[DeadLetter]:
    kafka, topics = KafkaSettings(), TopicSettings()
    letters = asyncio.run(read_dead_letters(kafka, topics, make_codec(kafka)))
    return [
        d
        for d in letters
        if (reason is None or d.letter.reason.value == reason.upper()) and (stage is None or d.letter.stage == stage)
    ]


@dlq_app.command("list")
def list_letters(
    reason: str | None = REASON,
    stage: str | None = STAGE,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List dead letters: where each came from, why, and the job it belongs to."""
    letters = _select(reason, stage)
    if as_json:
        for d in letters:
            l_ = d.letter
            typer.echo(
                json.dumps(
                    {
                        "ref": d.ref,
                        "job_id": l_.job_id,
                        "job_type": l_.job_type,
                        "stage": l_.stage,
                        "reason": l_.reason.value,
                        "error": l_.error_message,
                        "attempts": l_.attempts,
                        "source": f"{l_.source_topic}/{l_.source_partition}@{l_.source_offset}",
                        "at": l_.occurred_at.isoformat(),
                    }
                )
            )
        return
    table = Table(title=f"job-dlq: {len(letters)} dead letter(s)")
    for column in ("ref", "job id", "type", "stage", "reason", "attempts", "source", "error"):
        table.add_column(column, overflow="fold")
    for d in letters:
        l_ = d.letter
        source = f"{l_.source_topic}/{l_.source_partition}@{l_.source_offset}"
        table.add_row(
            d.ref,
            l_.job_id or "-",
            l_.job_type or "-",
            l_.stage,
            l_.reason.value,
            str(l_.attempts),
            source,
            l_.error_message[:200],
        )
    console.print(table)


@dlq_app.command("replay")
def replay_letters(
    refs: list[str] = typer.Argument(None, help="Dead letters to replay, as shown by `dlq list` (partition@offset)."),
    all_: bool = typer.Option(False, "--all", help="Replay every selected letter."),
    reason: str | None = REASON,
    stage: str | None = STAGE,
) -> None:
    """Re-publish dead letters: a failed request becomes a new job; other records go back to their topic."""
    selected = [d for d in _select(reason, stage) if all_ or d.ref in (refs or [])]
    missing = set(refs or []) - {d.ref for d in selected}
    if missing or not selected:
        console.print(f"[red]no such dead letter: {', '.join(sorted(missing)) or 'none selected'}[/red]")
        raise typer.Exit(1)
    for done in asyncio.run(_replay_all(selected)):
        target = f"new job {done.job_id}" if done.job_id else done.topic
        console.print(f"replayed {done.source.ref} -> {target}")


async def _replay_all(letters: list[DeadLetter]) -> list[Replayed]:
    kafka, topics = KafkaSettings(), TopicSettings()
    codec = make_codec(kafka)
    producer = make_producer(kafka, "dlq-replay")
    await producer.start()
    try:
        return [await replay(producer, codec, topics, d) for d in letters]
    finally:
        await producer.stop()
