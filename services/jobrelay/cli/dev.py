"""`jobrelay dev …`: the local development broker, PostgreSQL, Jaeger, and the whole local stack."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from jobrelay.dev.jaeger import JAEGER_VERSION, LocalJaeger, LocalJaegerError
from jobrelay.dev.kafkacluster import CLUSTER_PORT, LocalKafkaCluster
from jobrelay.dev.localkafka import LocalKafka, LocalKafkaError
from jobrelay.dev.localpostgres import LocalPostgres, LocalPostgresError
from jobrelay.dev.stack import Stack, StackError
from jobrelay.dev.supervisor import RestartPolicy

__all__ = ["dev_app"]

dev_app = typer.Typer(help="Run jobrelay locally: the Kafka broker and the whole stack.", no_args_is_help=True)
kafka_app = typer.Typer(
    help="The local Apache Kafka broker (KRaft), or a local cluster of N nodes (--brokers N).", no_args_is_help=True
)
dev_app.add_typer(kafka_app, name="kafka")
jaeger_app = typer.Typer(help="The local Jaeger v2 all-in-one (in memory, built with Go).", no_args_is_help=True)
dev_app.add_typer(jaeger_app, name="jaeger")
postgres_app = typer.Typer(help="The local PostgreSQL server (Debian's postgresql package).", no_args_is_help=True)
dev_app.add_typer(postgres_app, name="postgres")
console = Console(stderr=True)
RUN_DIR = typer.Option(None, "--run-dir", help="Where the stack keeps PIDs, logs and state (default .cache/stack).")


BROKERS = typer.Option(
    1, "--brokers", min=1, max=9, help="1: the single broker on 9092; N > 1: the local N-node cluster (KRaft)."
)
CLUSTER_PORT_OPTION = typer.Option(
    CLUSTER_PORT, "--port", help="The cluster's first broker port (node i: port+i-1, its controller: +100)."
)


def _kafka(brokers: int, port: int) -> LocalKafka | LocalKafkaCluster:
    return LocalKafka() if brokers == 1 else LocalKafkaCluster(brokers, port=port)


@kafka_app.command("up")
def kafka_up(
    timeout: float = typer.Option(90.0, help="Seconds to wait until the broker(s) answer."),
    brokers: int = BROKERS,
    port: int = CLUSTER_PORT_OPTION,
) -> None:
    """Fetch (first time), format and start the broker on 127.0.0.1:9092 (or the cluster); no-op when up."""
    kafka = _kafka(brokers, port)
    try:
        started = kafka.up(timeout)
    except LocalKafkaError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(("started " if started else "already up: ") + kafka.status().describe())
    if isinstance(kafka, LocalKafkaCluster):
        console.print(
            f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap} JOBRELAY_TOPICS_REPLICATION_FACTOR={kafka.replicas} "
            f"JOBRELAY_TOPICS_MIN_INSYNC_REPLICAS={kafka.min_insync_replicas}"
        )


@kafka_app.command("down")
def kafka_down(brokers: int = BROKERS, port: int = CLUSTER_PORT_OPTION) -> None:
    """Stop the broker (or the cluster's nodes) `up` started, by PID; leaves any other broker alone."""
    what = "local Kafka" if brokers == 1 else f"local {brokers}-node Kafka cluster"
    stopped = _kafka(brokers, port).down()
    console.print(f"stopped {what}" if stopped else f"no {what} started by jobrelay is running")


@kafka_app.command("status")
def kafka_status(brokers: int = BROKERS, port: int = CLUSTER_PORT_OPTION) -> None:
    """Say whether the broker(s) answer and whether jobrelay started them; exit 1 unless all answer."""
    status = _kafka(brokers, port).status()
    console.print(status.describe())
    if not status.reachable:
        raise typer.Exit(1)


@kafka_app.command("provision")
def kafka_provision() -> None:
    """Only fetch the broker's jars (Maven) into the cache."""
    broker = LocalKafka()
    broker.provision()
    console.print(f"Kafka jars in {broker.libs}")


@postgres_app.command("up")
def postgres_up(
    timeout: float = typer.Option(60.0, help="Seconds to wait until the server accepts connections."),
) -> None:
    """Initialise (first time) and start PostgreSQL on 127.0.0.1:54329 with a `jobrelay` database; no-op when up."""
    server = LocalPostgres()
    try:
        started = server.up(timeout)
    except LocalPostgresError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(("started " if started else "already up: ") + server.status().describe())
    console.print(f"JOBRELAY_STORE=postgres JOBRELAY_POSTGRES_DSN={server.dsn}")


@postgres_app.command("down")
def postgres_down() -> None:
    """Stop the server `up` started (pg_ctl, by its data folder and PID); leaves any other server alone."""
    try:
        stopped = LocalPostgres().down()
    except LocalPostgresError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print("stopped local PostgreSQL" if stopped else "no local PostgreSQL started by jobrelay is running")


@postgres_app.command("status")
def postgres_status() -> None:
    """Say whether a server answers and whether jobrelay started it; exit 1 when none answers."""
    status = LocalPostgres().status()
    console.print(status.describe())
    if not status.reachable:
        raise typer.Exit(1)


@jaeger_app.command("provision")
def jaeger_provision() -> None:
    """Only build the Jaeger binary into the cache (Go toolchain, Go module proxy; a few minutes once)."""
    try:
        binary = LocalJaeger().provision()
    except LocalJaegerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Jaeger {JAEGER_VERSION}: {binary}")


@jaeger_app.command("up")
def jaeger_up() -> None:
    """Build (first time) and start Jaeger on 127.0.0.1 (OTLP/HTTP 4318, UI and API 16686)."""
    jaeger = LocalJaeger()
    try:
        started = jaeger.up()
    except LocalJaegerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"{'started' if started else 'already up:'} Jaeger {jaeger.url} (OTLP {jaeger.otlp_endpoint})")


@jaeger_app.command("down")
def jaeger_down() -> None:
    """Stop the Jaeger `up` started (by its PID)."""
    console.print("stopped Jaeger" if LocalJaeger().down() else "no Jaeger started by jobrelay is running")


@dev_app.command("up")
def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="Leave everything running and return."),
    timeout: float = typer.Option(120.0, help="Seconds to wait until every service is healthy."),
    jaeger: bool = typer.Option(False, "--jaeger", help="Also run Jaeger; the services export their traces to it."),
    max_restarts: int = typer.Option(
        5, help="In the foreground: a service that exits more often than this within a minute is left down."
    ),
    restart_backoff: float = typer.Option(1.0, help="Seconds before the first restart; doubles each time in a row."),
    run_dir: Path | None = RUN_DIR,
) -> None:
    """Start Kafka, the topics and the four services; Ctrl+C stops what this started.

    In the foreground a service that exits (a crash, a kill -9) is restarted with backoff.
    With JOBRELAY_STORE=postgres the view and the deliveries live in PostgreSQL (the local server, started too).
    """
    stack = Stack(jaeger=LocalJaeger() if jaeger else None, run_dir=run_dir)
    try:
        kafka_started, started = stack.up(timeout)
    except (StackError, LocalKafkaError, LocalJaegerError, LocalPostgresError) as exc:
        console.print(f"[red]{exc}[/red]")
        if stack.jaeger_started and stack.jaeger is not None:
            stack.jaeger.down()
        if stack.postgres_started:
            stack.postgres.down()
        raise typer.Exit(1) from exc
    _print_status(stack)
    console.print(
        f"\nAPI key of tenant dev (kept in {stack.run_dir / 'api-key'}; the CLI reads it from there):\n"
        f"  export JOBRELAY_API_KEY={stack.api_key()}\n"
        "Submit a first job:\n"
        "  jobrelay submit demo.sleep --payload '{\"seconds\": 3}' --wait\n"
        "  curl -si -X POST http://127.0.0.1:8000/v1/jobs -H 'content-type: application/json' "
        '-H "Authorization: Bearer $JOBRELAY_API_KEY" '
        '-d \'{"type": "demo.echo", "payload": {"hello": "world"}}\'\n'
        f"Logs: {stack.run_dir}/<service>.log\n"
        f"Webhooks are signed with the secret in {stack.run_dir / 'webhook-secret'}"
    )
    if stack.jaeger is not None:
        console.print(
            f"Traces: {stack.jaeger.url}/api/traces?service=jobrelay-intake"
            "&tags=%7B%22jobrelay.job_id%22%3A%22<id>%22%7D"
            f" (the services export to {stack.env['OTEL_EXPORTER_OTLP_ENDPOINT']})"
        )
    if detach:
        return
    try:
        console.print("\n[bold]Running. Ctrl+C stops everything this command started.[/bold]")
        policy = RestartPolicy(backoff_s=restart_backoff, max_restarts=max_restarts)
        stack.supervise(started, _signalled(), lambda text: console.print(f"[yellow]{text}[/yellow]"), policy)
        console.print("stopping …")
    finally:  # stop what we started even if the terminal went away (printing can fail then)
        stack.stop(started)
        if stack.jaeger_started and stack.jaeger is not None:
            stack.jaeger.down()
        if stack.postgres_started:
            stack.postgres.down()
        if kafka_started:
            stack.kafka.down()
    console.print("stopped")


@dev_app.command("down")
def down(
    kafka: bool = typer.Option(True, help="Also stop the local Kafka broker if jobrelay started it."),
    postgres: bool = typer.Option(True, help="Also stop the local PostgreSQL if jobrelay started it."),
) -> None:
    """Stop the services (the broker, PostgreSQL, Jaeger) that `jobrelay dev up --detach` started."""
    stack = Stack()
    stopped = stack.stop()
    console.print(f"stopped: {', '.join(s.name for s in stopped) or 'no services'}")
    if LocalJaeger().down():
        console.print("stopped Jaeger")
    if postgres and stack.postgres.down():
        console.print("stopped local PostgreSQL")
    if kafka and stack.kafka.down():
        console.print("stopped local Kafka")


@dev_app.command("status")
def status(run_dir: Path | None = RUN_DIR) -> None:
    """Show Kafka and every service: PID, port, health, restarts by `jobrelay dev up`."""
    _print_status(Stack(run_dir=run_dir))


def _print_status(stack: Stack) -> None:
    from rich.table import Table

    table = Table(title="jobrelay")
    for column in ("part", "listens on", "pid", "health", "restarts"):
        table.add_column(column)
    kafka = stack.kafka.status()
    table.add_row("kafka", kafka.bootstrap, str(kafka.pid or "-"), "up" if kafka.reachable else "down", "-")
    postgres = stack.postgres.status()
    if postgres.pid is not None or stack.uses_local_postgres:
        health = "up" if postgres.reachable else "down"
        table.add_row("postgres", postgres.address, str(postgres.pid or "-"), health, "-")
    for service, pid, healthy in stack.status():
        restarts = str(stack.restarts(service))
        table.add_row(service.name, service.url, str(pid or "-"), "healthy" if healthy else "down", restarts)
    jaeger = stack.jaeger or LocalJaeger()
    if (jaeger_pid := jaeger.running_pid()) is not None or stack.jaeger is not None:
        table.add_row("jaeger", jaeger.url, str(jaeger_pid or "-"), "up" if jaeger.ready() else "down", "-")
    console.print(table)


def _signalled() -> Callable[[], bool]:
    """Whether Ctrl+C, SIGTERM or a closed terminal (SIGHUP) came, from now on."""
    import signal

    received: list[int] = []

    def handler(signum: int, _: object) -> None:
        received.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)
    return lambda: bool(received)
