"""The whole system on one machine: local Kafka, the topics, and the four services as processes.

`jobrelay dev up` (and `make run`) starts what is not running yet, waits until every service
answers `/healthz`, prints where each listens, and in the foreground restarts a service that
exits (`jobrelay.dev.supervisor`) and stops everything it started on Ctrl+C or SIGTERM. With
`JOBRELAY_STORE=postgres` the projector's view and the notifier's deliveries live in PostgreSQL:
the local server (`jobrelay dev postgres up`) is started too, unless `JOBRELAY_POSTGRES_DSN`
names another database. `--detach` leaves it running for scripts (unsupervised);
`jobrelay dev down` stops it, by the PIDs recorded in `.cache/stack/`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from jobrelay.dev.jaeger import LocalJaeger
from jobrelay.dev.localkafka import LocalKafka, port_open, project_root
from jobrelay.dev.localpostgres import LocalPostgres
from jobrelay.dev.supervisor import RestartPolicy, Supervisor, run_supervised
from jobrelay.security.keys import KeyFile, Scope

__all__ = ["SERVICES", "Service", "Stack", "StackError"]


class StackError(RuntimeError):
    """A part of the local stack could not be started."""


@dataclass(frozen=True, slots=True)
class Service:
    """One service process: its CLI command and the port its health endpoint answers on."""

    name: str
    port: int
    port_env: str

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://127.0.0.1:{self.port}"


SERVICES = (
    Service("intake", 8000, "JOBRELAY_INTAKE_PORT"),
    Service("projector", 8001, "JOBRELAY_PROJECTOR_PORT"),
    Service("notifier", 8002, "JOBRELAY_NOTIFIER_PORT"),
    Service("processor", 8003, "JOBRELAY_PROCESSOR_PORT"),
)


def _healthy(service: Service) -> bool:
    try:
        with urllib.request.urlopen(f"{service.url}/healthz", timeout=1) as response:  # noqa: S310 - fixed local URL
            return bool(response.status == 200)
    except OSError:
        return False


class Stack:
    """Start, stop and inspect the local stack."""

    def __init__(
        self,
        root: Path | None = None,
        env: Mapping[str, str] | None = None,
        run_dir: Path | None = None,
        ports: Mapping[str, int] | None = None,
        jaeger: LocalJaeger | None = None,
        only: Collection[str] | None = None,
    ) -> None:
        """`run_dir` and `ports` let a test run a private stack beside a developer's; `only` names
        the services it runs (all four by default).

        With `jaeger`, `up` also starts it and the services export their spans to it (unless
        OTEL_EXPORTER_OTLP_ENDPOINT is set: an explicit endpoint wins).
        """
        self.root = root or project_root()
        self.jaeger = jaeger
        self.jaeger_started = False
        self.run_dir = run_dir or self.root / ".cache" / "stack"
        self.kafka = LocalKafka(self.root)
        self.postgres = LocalPostgres(self.root)
        self.postgres_started = False
        self.env = dict(env if env is not None else os.environ)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # our children, reaped in stop()
        chosen = dict(ports or {}) or {s.name: int(self.env[s.port_env]) for s in SERVICES if self.env.get(s.port_env)}
        self.services = tuple(
            dataclasses.replace(s, port=chosen.get(s.name, s.port)) for s in SERVICES if only is None or s.name in only
        )

    def _pid_file(self, service: Service) -> Path:
        return self.run_dir / f"{service.name}.pid"

    def log_file(self, service: Service) -> Path:
        """Where a service's output goes."""
        return self.run_dir / f"{service.name}.log"

    def pid(self, service: Service) -> int | None:
        """PID of the service process this stack started, if it is alive."""
        try:
            pid = int(self._pid_file(service).read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if service.name.encode() in cmdline and b"jobrelay.cli.main" in cmdline else None

    def restarts_file(self, service: Service) -> Path:
        """Where the supervisor counts a service's restarts."""
        return self.run_dir / f"{service.name}.restarts"

    def restarts(self, service: Service) -> int:
        """How often the supervisor restarted the service (since `up` started it)."""
        try:
            return int(self.restarts_file(service).read_text())
        except (OSError, ValueError):
            return 0

    def exit_codes(self, services: list[Service]) -> dict[str, int | None]:
        """Each of our children's exit code, None while it runs (for the supervisor)."""
        return {s.name: self._procs[s.name].poll() for s in services if s.name in self._procs}

    def restart(self, name: str, timeout: float = 120.0) -> None:
        """Start the exited service `name` again (counting it), after killing what is left of its process group."""
        service = next(s for s in self.services if s.name == name)
        old = self._procs.pop(name, None)
        if old is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(old.pid, signal.SIGKILL)  # its own session: workers it forked go with it
            old.wait(timeout=10)
        deadline = time.monotonic() + 10
        while port_open("127.0.0.1", service.port) and time.monotonic() < deadline:
            time.sleep(0.1)  # the port is freed once the group is gone
        self.restarts_file(service).write_text(f"{self.restarts(service) + 1}\n")
        self._start(service)

    def up(self, timeout: float = 120.0) -> tuple[bool, list[Service]]:
        """Start Kafka (unless one answers), the topics, and every service not yet running.

        Returns (whether this call started Kafka, the services it started).
        """
        kafka_started = self.kafka.up() if "KAFKA_BOOTSTRAP_SERVERS" not in self.env else False
        if self.uses_local_postgres:
            self.postgres_started = self.postgres.up()
        if self.jaeger is not None:
            self.jaeger_started = self.jaeger.up()
            self.env.setdefault("OTEL_EXPORTER_OTLP_ENDPOINT", self.jaeger.otlp_endpoint)
        self._ensure_topics()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.api_key()  # before the services start: they read the key file
        started = [s for s in self.services if self.pid(s) is None and self._start(s)]
        for service in started:
            self.restarts_file(service).unlink(missing_ok=True)
        try:
            self._wait_healthy(started, timeout)
        except StackError:
            self.stop(started)
            raise
        return kafka_started, started

    @property
    def uses_local_postgres(self) -> bool:
        """Whether the stores are switched to PostgreSQL (JOBRELAY_STORE=postgres) without a DSN of their own."""
        dsns = ("JOBRELAY_POSTGRES_DSN", "JOBRELAY_PROJECTOR_POSTGRES_DSN", "JOBRELAY_NOTIFIER_POSTGRES_DSN")
        return self.env.get("JOBRELAY_STORE") == "postgres" and not any(self.env.get(name) for name in dsns)

    def _ensure_topics(self) -> None:
        cmd = [sys.executable, "-m", "jobrelay.cli.main", "topics", "ensure"]
        result = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"creating the topics failed:\n{result.stderr}")

    def _start(self, service: Service) -> bool:
        if port_open("127.0.0.1", service.port):
            raise StackError(f"port {service.port} for the {service.name} is taken by another process")
        env = {**self._defaults(), **self.env, service.port_env: str(service.port)}
        with self.log_file(service).open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobrelay.cli.main", service.name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.root,
            )
        self._procs[service.name] = proc
        self._pid_file(service).write_text(f"{proc.pid}\n")
        return True

    def _defaults(self) -> dict[str, str]:
        """Where the services keep their state, and the webhook signing secret (overridable)."""
        return {
            "JOBRELAY_INTAKE_IDEMPOTENCY_DB": str(self.run_dir / "intake-idempotency.sqlite3"),
            "JOBRELAY_PROJECTOR_DB_PATH": str(self.run_dir / "projector" / "view.sqlite"),
            "JOBRELAY_NOTIFIER_DATABASE": str(self.run_dir / "notifier.sqlite3"),
            "JOBRELAY_NOTIFIER_SIGNING_SECRETS": self.signing_secret(),
            "JOBRELAY_AUTH_KEYS_FILE": str(self.keys_file),
            "JOBRELAY_PROCESSOR_HANDLER_MODULES": "jobrelay.processor.demo",  # for trying it out; not a default
        }

    @property
    def keys_file(self) -> Path:
        """The key file the stack's services share (`JOBRELAY_AUTH_KEYS_FILE` wins)."""
        return Path(self.env.get("JOBRELAY_AUTH_KEYS_FILE") or self.run_dir / "keys.json")

    def api_key(self) -> str:
        """The local stack's API key for tenant `dev` (submit, read, cancel), kept in `.cache/stack/api-key`.

        The services keep only its hash (in the key file); a key that no longer opens it is replaced.
        """
        path = self.run_dir / "api-key"
        keys = KeyFile(self.keys_file)
        if path.is_file() and keys.read().check(path.read_text().strip()) is not None:
            return path.read_text().strip()
        text, _ = keys.add("dev", (Scope.SUBMIT, Scope.READ, Scope.CANCEL))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        path.chmod(0o600)
        return text

    def signing_secret(self) -> str:
        """The local stack's webhook signing secret (`whsec_…`), made once and kept in `.cache/stack/`."""
        path = self.run_dir / "webhook-secret"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
            path.chmod(0o600)
        return path.read_text().strip()

    def _wait_healthy(self, services: list[Service], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(services)
        while waiting and time.monotonic() < deadline:
            for service in list(waiting):
                # Ask the child handle, not /proc: right after fork its cmdline is still ours.
                if self._procs[service.name].poll() is not None:
                    raise StackError(f"the {service.name} exited; see {self.log_file(service)}")
                if _healthy(service):
                    waiting.remove(service)
            time.sleep(0.2)
        if waiting:
            names = ", ".join(s.name for s in waiting)
            raise StackError(f"not healthy after {timeout:.0f}s: {names}; see the logs in {self.run_dir}")

    def stop(self, services: list[Service] | None = None, grace: float = 30.0) -> list[Service]:
        """SIGTERM the services (all by default) this stack started; SIGKILL after `grace`."""
        targets = [(s, pid) for s in (services or list(self.services)) if (pid := self.pid(s)) is not None]
        for _, pid in targets:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(self.pid(s) == pid for s, pid in targets):
            time.sleep(0.1)
        for service, pid in targets:
            if self.pid(service) == pid:
                os.kill(pid, signal.SIGKILL)
            proc = self._procs.pop(service.name, None)
            if proc is not None:
                proc.wait(timeout=10)
            self._pid_file(service).unlink(missing_ok=True)
        return [s for s, _ in targets]

    def status(self) -> list[tuple[Service, int | None, bool]]:
        """(service, PID if ours, healthy) for every service."""
        return [(s, self.pid(s), _healthy(s)) for s in self.services]

    def supervise(self, services: list[Service], stopping: Callable[[], bool], report: Callable[[str], None],
                  policy: RestartPolicy | None = None) -> None:  # fmt: skip
        """Restart `services` when they exit, until `stopping()` (see `jobrelay.dev.supervisor`)."""

        def restart(name: str) -> None:
            try:
                self.restart(name)
                report(f"restarted the {name} (restart {self.restarts(self._service(name))})")
            except (OSError, StackError) as exc:
                report(f"could not restart the {name}: {exc}")

        run_supervised(lambda: self.exit_codes(services), restart, report, stopping, Supervisor(policy))

    def _service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)
