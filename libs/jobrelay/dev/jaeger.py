"""A local Jaeger v2 all-in-one for development and tests (in-memory storage, no Docker).

Jaeger is not on PyPI, so it is built once with the Go toolchain from its module source (fetched
through the Go module proxy) into `.cache/jaeger/<version>/jaeger`. Jaeger v2.14.0 is the module
version v1.76.0 of github.com/jaegertracing/jaeger; its go.mod has a replace directive, which
`go install …@version` refuses, so the module is downloaded and built as the main module.

`up` writes a config that listens on 127.0.0.1 only (OTLP/HTTP for the services, the query API
and its UI), starts the binary and returns once the query API answers; `down` stops only the
process `up` started, by PID. The UI is a placeholder page (its assets are built from a separate
JavaScript project); the HTTP API (`/api/services`, `/api/traces?service=…&tags=…`) is complete.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from jobrelay.dev.localkafka import port_open, project_root, stop_pid

__all__ = ["JAEGER_MODULE_VERSION", "JAEGER_VERSION", "JaegerPorts", "LocalJaeger", "LocalJaegerError"]

JAEGER_VERSION = "2.14.0"
JAEGER_MODULE_VERSION = "v1.76.0"  # the Go module tag of the same commit
MODULE = "github.com/jaegertracing/jaeger"


class LocalJaegerError(RuntimeError):
    """Jaeger could not be built, started or stopped."""


@dataclass(frozen=True, slots=True)
class JaegerPorts:
    """Where the local Jaeger listens (all on 127.0.0.1)."""

    otlp_http: int = 4318
    query_http: int = 16686
    query_grpc: int = 16685
    health: int = 13133


_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
  jaeger_query:
    enable_tracing: false  # Jaeger tracing itself would export to 127.0.0.1:4317
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class LocalJaeger:
    """Build (once), start, inspect and stop a local Jaeger."""

    def __init__(self, root: Path | None = None, run_dir: Path | None = None, ports: JaegerPorts | None = None) -> None:
        """`run_dir` and `ports` let a test run a private Jaeger beside a developer's."""
        self.root = root or project_root()
        self.binary = self.root / ".cache" / "jaeger" / JAEGER_VERSION / "jaeger"
        self.run_dir = run_dir or self.root / ".cache" / "jaeger" / "run"
        self.ports = ports or JaegerPorts()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def otlp_endpoint(self) -> str:
        """The OTLP/HTTP endpoint to give the services (OTEL_EXPORTER_OTLP_ENDPOINT)."""
        return f"http://127.0.0.1:{self.ports.otlp_http}"

    @property
    def url(self) -> str:
        """The query API and UI."""
        return f"http://127.0.0.1:{self.ports.query_http}"

    @property
    def pid_file(self) -> Path:
        """Where `up` records the PID."""
        return self.run_dir / "jaeger.pid"

    @property
    def log_file(self) -> Path:
        """Jaeger's own output."""
        return self.run_dir / "jaeger.log"

    @property
    def config_file(self) -> Path:
        """The config `up` writes."""
        return self.run_dir / "config.yaml"

    def provision(self) -> Path:
        """Build the binary unless it is cached; needs Go ≥ 1.24 and the Go module proxy."""
        if self.binary.is_file():
            return self.binary
        go = shutil.which("go")
        if go is None:
            raise LocalJaegerError(
                "building Jaeger needs the Go toolchain (go ≥ 1.24 on PATH): https://go.dev/doc/install"
            )
        env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
        download = self._go([go, "mod", "download", "-json", f"{MODULE}@{JAEGER_MODULE_VERSION}"], env, Path.cwd())
        source = Path(json.loads(download)["Dir"])
        self.binary.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="jaeger-src-") as tmp:
            work = Path(tmp) / "jaeger"
            shutil.copytree(source, work)  # the module cache is read-only; building writes go.sum
            for path in work.rglob("*"):
                path.chmod(path.stat().st_mode | 0o200)
            partial = self.binary.with_suffix(".partial")
            self._go([go, "build", "-trimpath", "-o", str(partial), "./cmd/jaeger"], env, work)
            partial.replace(self.binary)
        return self.binary

    @staticmethod
    def _go(cmd: list[str], env: dict[str, str], cwd: Path) -> str:
        result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalJaegerError(f"{' '.join(cmd[:3])} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def running_pid(self) -> int | None:
        """The PID of the Jaeger `up` started, if it is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if str(self.config_file).encode() in cmdline else None

    def ready(self) -> bool:
        """Whether the query API answers."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/services", timeout=1) as response:  # noqa: S310 - local URL
                return bool(response.status == 200)
        except OSError:
            return False

    def up(self, timeout: float = 60.0) -> bool:
        """Start Jaeger unless ours runs already; True when this call started it."""
        if self.running_pid() is not None:
            self._wait_ready(timeout)
            return False
        taken = [
            p for p in (self.ports.otlp_http, self.ports.query_http, self.ports.query_grpc) if port_open("127.0.0.1", p)
        ]
        if taken:
            raise LocalJaegerError(f"port(s) {taken} are taken by another process; is another Jaeger running?")
        self.provision()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(_CONFIG.format(**dataclasses.asdict(self.ports)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.binary), "--config", str(self.config_file)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.run_dir,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        try:
            self._wait_ready(timeout)
        except LocalJaegerError:
            self.down()
            raise
        return True

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise LocalJaegerError(f"Jaeger exited with {self._proc.returncode}; see {self.log_file}")
            if self.ready():
                return
            time.sleep(0.2)
        raise LocalJaegerError(f"Jaeger did not answer on {self.url} within {timeout:.0f}s; see {self.log_file}")

    def down(self, grace: float = 15.0) -> bool:
        """Stop the Jaeger `up` started (by PID); True when one was stopped."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        stop_pid(pid, self.running_pid, self._proc, grace)
        if self._proc is not None and self._proc.pid == pid:
            self._proc = None  # reaped by stop_pid
        self.pid_file.unlink(missing_ok=True)
        return True
