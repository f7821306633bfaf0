"""`jobrelay dev …`: the local development broker (and, later, the whole local stack)."""

from __future__ import annotations

import typer
from rich.console import Console

from jobrelay.dev.localkafka import LocalKafka, LocalKafkaError

__all__ = ["dev_app"]

dev_app = typer.Typer(help="Run jobrelay's dependencies locally.", no_args_is_help=True)
kafka_app = typer.Typer(help="The local single-node Apache Kafka broker (KRaft).", no_args_is_help=True)
dev_app.add_typer(kafka_app, name="kafka")
console = Console(stderr=True)


@kafka_app.command("up")
def kafka_up(timeout: float = typer.Option(90.0, help="Seconds to wait until the broker answers.")) -> None:
    """Fetch (first time), format and start the broker on 127.0.0.1:9092; no-op when one answers."""
    broker = LocalKafka()
    try:
        started = broker.up(timeout)
    except LocalKafkaError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(("started " if started else "already up: ") + broker.status().describe())


@kafka_app.command("down")
def kafka_down() -> None:
    """Stop the broker `up` started (by its PID); leaves any other broker alone."""
    broker = LocalKafka()
    console.print("stopped local Kafka" if broker.down() else "no local Kafka started by jobrelay is running")


@kafka_app.command("status")
def kafka_status() -> None:
    """Say whether a broker answers and whether jobrelay started it; exit 1 when none answers."""
    status = LocalKafka().status()
    console.print(status.describe())
    if not status.reachable:
        raise typer.Exit(1)


@kafka_app.command("provision")
def kafka_provision() -> None:
    """Only fetch the broker's jars (Maven) into the cache."""
    broker = LocalKafka()
    broker.provision()
    console.print(f"Kafka jars in {broker.libs}")
