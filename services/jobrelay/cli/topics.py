"""`jobrelay topics …`: create and check the four co-partitioned topics."""

from __future__ import annotations

import typer
from rich.console import Console

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.topics import TopicMismatchError, ensure_topics

__all__ = ["topics_app"]

topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
console = Console(stderr=True)


@topics_app.command("ensure")
def ensure(partitions: int | None = typer.Option(None, help="Override JOBRELAY_TOPICS_PARTITIONS.")) -> None:
    """Create missing topics with the configured partitions, replication and retention; idempotent."""
    topics = TopicSettings() if partitions is None else TopicSettings(partitions=partitions)
    try:
        report = ensure_topics(KafkaSettings(), topics)
    except TopicMismatchError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    for name in report.created:
        console.print(f"created {name} ({report.partitions} partitions)")
    for name in report.existing:
        console.print(f"exists  {name} ({report.partitions} partitions)")
