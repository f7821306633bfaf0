"""The local Apache Kafka broker for development and tests (KRaft, one node, no Docker).

The jars come from Maven Central through `deploy/kafka/pom.xml` into `.cache/kafka/<version>/libs`;
the broker's data, config, log and PID file live in `.cache/kafka/run`. `up` is idempotent and
returns once a metadata request succeeds; `down` stops only the process that `up` started.
One `LocalKafka` is also one node of the local cluster (`jobrelay.dev.kafkacluster`).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import string
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BrokerStatus", "LocalKafka", "LocalKafkaError", "NodeConfig", "port_open", "project_root", "stop_pid"]

KAFKA_VERSION = "4.3.1"
MAIN_CLASS = "kafka.Kafka"


class LocalKafkaError(RuntimeError):
    """The local broker could not be provisioned, started or stopped."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """What makes a node one of a cluster rather than the single broker."""

    node_id: int = 1
    voters: str | None = None  # controller.quorum.voters; None: this node alone
    replicas: int = 1  # of the internal topics, and default.replication.factor
    min_isr: int = 1
    heartbeat_ms: int = 2000  # Kafka's defaults; the cluster fences a dead node sooner
    session_timeout_ms: int = 9000
    cluster_id_file: Path | None = None  # shared by the nodes of a cluster; None: a fresh id


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """What `status` reports: whether something answers, and whether it is ours."""

    bootstrap: str
    reachable: bool
    pid: int | None

    def describe(self) -> str:
        """One line for people."""
        if self.pid is not None:
            return f"local Kafka {KAFKA_VERSION} running on {self.bootstrap} (pid {self.pid})"
        if self.reachable:
            return f"a Kafka broker not started by jobrelay answers on {self.bootstrap}"
        return f"no Kafka broker on {self.bootstrap}"


def project_root() -> Path:
    """The checkout this module lives in (where deploy/kafka/pom.xml is), else the cwd."""
    env = os.environ.get("JOBRELAY_HOME")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        if (parent / "deploy" / "kafka" / "pom.xml").is_file():
            return parent
    return Path.cwd()


def stop_pid(
    pid: int, running_pid: Callable[[], int | None], proc: subprocess.Popen[bytes] | None, grace: float
) -> None:
    """SIGTERM `pid`; SIGKILL it if `running_pid()` still names it after `grace` s; reap it if it is `proc`.

    `running_pid` checks the PID file against /proc, so a recycled PID is never signalled twice
    and a zombie (no cmdline) counts as stopped.
    """
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and running_pid() == pid:
        time.sleep(0.1)
    if running_pid() == pid:
        os.kill(pid, signal.SIGKILL)
    if proc is not None and proc.pid == pid:
        proc.wait(timeout=10)  # reap our child


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class LocalKafka:
    """Provision, start, stop and inspect the development broker."""

    def __init__(
        self,
        root: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 9092,
        controller_port: int = 9093,
        *,
        node: NodeConfig | None = None,
        run_dir: Path | None = None,
    ) -> None:
        self.root = root or project_root()
        self.host, self.port, self.controller_port = host, port, controller_port
        self.node = node or NodeConfig()
        self.cache = self.root / ".cache" / "kafka"
        self.libs = self.cache / KAFKA_VERSION / "libs"
        # One run folder per port, so a test can run a second, private broker beside the main one.
        self.run_dir = run_dir or self.cache / ("run" if port == 9092 else f"run-{port}")
        self.data_dir = self.run_dir / "data"
        self.pid_file = self.run_dir / "kafka.pid"
        self.log_file = self.run_dir / "kafka.log"
        self.config_file = self.run_dir / "server.properties"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """host:port of the PLAINTEXT listener."""
        return f"{self.host}:{self.port}"

    # -- provisioning -----------------------------------------------------------------------

    def provision(self) -> None:
        """Fetch the broker jars with Maven unless they are already cached."""
        if self.libs.is_dir() and any(self.libs.glob("kafka_2.13-*.jar")):
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError("Maven (mvn) is needed to fetch Kafka; install it (apt-get install maven)")
        pom = self.root / "deploy" / "kafka" / "pom.xml"
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-Dkafka.libs={self.libs}"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(f"fetching Kafka {KAFKA_VERSION} failed:\n{result.stdout}{result.stderr}")

    def _java(self, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise LocalKafkaError("a Java runtime (17+) is needed to run Kafka; install openjdk-17-jre-headless")
        log4j = self.root / "deploy" / "kafka" / "log4j2.yaml"
        return [java, "-Xms256m", "-Xmx1g", f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{self.libs}/*", *args]

    def _render_config(self) -> None:
        template = (self.root / "deploy" / "kafka" / "server.properties.template").read_text()
        node = self.node
        values = {
            "host": self.host,
            "port": self.port,
            "controller_port": self.controller_port,
            "data_dir": self.data_dir,
            "node_id": node.node_id,
            "voters": node.voters or f"{node.node_id}@{self.host}:{self.controller_port}",
            "replicas": node.replicas,
            "min_isr": node.min_isr,
            "heartbeat_ms": node.heartbeat_ms,
            "session_timeout_ms": node.session_timeout_ms,
        }
        self.config_file.write_text(string.Template(template).substitute(values))

    def _cluster_id(self) -> str:
        path = self.node.cluster_id_file
        if path is not None and path.is_file():
            return path.read_text().strip()
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if path is not None:  # the first node formatted names the cluster for the others
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(cluster_id + "\n")
        return cluster_id

    def _format(self) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        # controller.quorum.voters is set (a static quorum), so no --standalone.
        cmd = self._java("kafka.tools.StorageTool", "format", "-t", self._cluster_id(), "-c", str(self.config_file))
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(f"formatting the Kafka storage failed:\n{result.stdout}{result.stderr}")

    # -- life cycle ---------------------------------------------------------------------------

    def running_pid(self) -> int | None:
        """The PID of the broker we started, if it is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if MAIN_CLASS.encode() in cmdline and str(self.config_file).encode() in cmdline else None

    def status(self) -> BrokerStatus:
        """Whether a broker answers on our port, and whether it is ours."""
        return BrokerStatus(self.bootstrap, port_open(self.host, self.port), self.running_pid())

    def up(self, timeout: float = 90.0) -> bool:
        """Start the broker unless one answers already; True when this call started it."""
        if self.running_pid() is not None or port_open(self.host, self.port):
            self.wait_ready(timeout)
            return False
        self.prepare()
        proc = self.spawn()
        try:
            self.wait_ready(timeout, proc)
        except LocalKafkaError:
            self.down()
            raise
        return True

    def prepare(self) -> None:
        """Fetch the jars (first time), write the config, format the storage (first time)."""
        self.provision()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._render_config()
        self._format()

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the prepared broker in the background and record its PID; does not wait for it."""
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                self._java(MAIN_CLASS, str(self.config_file)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.run_dir,
            )
        self._proc = proc  # keep the handle: the broker outlives this call, and dropping it warns
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc

    def wait_ready(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        """Return once a metadata request succeeds; raise with the log's tail after `timeout`."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise LocalKafkaError(f"Kafka exited with {proc.returncode}:\n{self._log_tail()}")
            try:
                admin.list_topics(timeout=2)
                return
            except Exception:  # noqa: BLE001 - any failure means "not yet"
                time.sleep(0.2)
        raise LocalKafkaError(f"Kafka did not answer on {self.bootstrap} within {timeout:.0f}s:\n{self._log_tail()}")

    def down(self, grace: float = 30.0) -> bool:
        """Stop the broker this project started (by PID); True when one was stopped."""
        pid = self.running_pid()
        if pid is None:
            if self._proc is not None:  # our child died already (e.g. SIGTERMed with its cluster): reap it
                self._proc.wait(timeout=grace)
                self._proc = None
            self.pid_file.unlink(missing_ok=True)
            return False
        stop_pid(pid, self.running_pid, self._proc, grace)
        if self._proc is not None and self._proc.pid == pid:
            self._proc = None  # reaped by stop_pid
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self, timeout: float = 10.0) -> int | None:
        """SIGKILL the broker this project started, as a crash would (for failure drills); its PID.

        Returns once the process is gone (reaped when it is our child); None when none of ours runs.
        """
        pid = self.running_pid()
        if pid is None:
            return None
        os.kill(pid, signal.SIGKILL)
        if self._proc is not None and self._proc.pid == pid:
            self._proc.wait(timeout=timeout)
            self._proc = None
        deadline = time.monotonic() + timeout
        while self.running_pid() == pid and time.monotonic() < deadline:
            time.sleep(0.05)  # not our child: its parent (or init) reaps it
        return pid

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
