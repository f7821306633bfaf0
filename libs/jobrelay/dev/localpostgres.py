"""The local PostgreSQL server for development and tests (Debian's `postgresql` package, no Docker).

The binaries are the distribution's (`/usr/lib/postgresql/<version>/bin`, the newest version
installed; `JOBRELAY_POSTGRES_BIN` names another folder). `up` runs `initdb` once into
`.cache/postgres/data` (superuser `jobrelay`, trust authentication from 127.0.0.1 only, no Unix
socket), starts the server with `pg_ctl` on 127.0.0.1:54329 (not the default 5432, so it never
meets a system cluster), creates the `jobrelay` database and records the server's PID in
`.cache/postgres/postgres.pid`; `down` stops only the server `up` started.

PostgreSQL refuses to run as root. Run by root (CI, containers), every server command runs as an
unprivileged account through `runuser`: `JOBRELAY_POSTGRES_OS_USER`, else `postgres` (created by
Debian's package), else `nobody`; the data folder and log are handed to that account. When that
account cannot enter the checkout (one under /root, say), they live in
`/var/tmp/jobrelay-postgres-<hash of the checkout's path>` instead.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from jobrelay.dev.localkafka import port_open, project_root, stop_pid

__all__ = ["DEFAULT_PORT", "LocalPostgres", "LocalPostgresError", "PostgresStatus", "find_bin_dir"]

DEFAULT_PORT = 54329
DEBIAN_BINARIES = Path("/usr/lib/postgresql")

# Trust is safe only because the server listens on 127.0.0.1 and has no Unix socket.
_HBA = """\
# jobrelay's local development server: trust, from 127.0.0.1 only (no other address, no Unix socket).
host all all 127.0.0.1/32 trust
"""


class LocalPostgresError(RuntimeError):
    """The local PostgreSQL could not be found, initialised, started or stopped."""


@dataclass(frozen=True, slots=True)
class PostgresStatus:
    """What `status` reports: whether a server answers on the port, and whether it is ours."""

    address: str
    reachable: bool
    pid: int | None

    def describe(self) -> str:
        """One line for people."""
        if self.pid is not None:
            return f"local PostgreSQL running on {self.address} (pid {self.pid})"
        if self.reachable:
            return f"a PostgreSQL server not started by jobrelay answers on {self.address}"
        return f"no PostgreSQL server on {self.address}"


def _version(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name)) or (0,)


def find_bin_dir() -> Path:
    """The folder of `initdb`, `pg_ctl` and `psql`: JOBRELAY_POSTGRES_BIN, Debian's newest, or the PATH."""
    if env := os.environ.get("JOBRELAY_POSTGRES_BIN"):
        return Path(env)
    installed = sorted(DEBIAN_BINARIES.glob("*/bin/initdb"), key=_version)
    if installed:
        return installed[-1].parent
    if found := shutil.which("initdb"):
        return Path(found).parent
    raise LocalPostgresError(
        "PostgreSQL's server binaries are missing; install them (apt-get install postgresql) "
        "or point JOBRELAY_POSTGRES_BIN at the folder holding initdb and pg_ctl"
    )


def _os_user() -> str | None:
    """The account the server runs as when we are root (None: run it as ourselves)."""
    if os.geteuid() != 0:
        return None
    if env := os.environ.get("JOBRELAY_POSTGRES_OS_USER"):
        return env
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise LocalPostgresError("running as root needs an unprivileged account: set JOBRELAY_POSTGRES_OS_USER")


class LocalPostgres:
    """Initialise, start, stop and inspect the development PostgreSQL server."""

    def __init__(
        self, root: Path | None = None, host: str = "127.0.0.1", port: int = DEFAULT_PORT, database: str = "jobrelay"
    ) -> None:
        self.root = root or project_root()
        self.host, self.port, self.database = host, port, database
        self.user = "jobrelay"  # the database superuser initdb creates
        self.os_user = _os_user()
        self.cache = self.root / ".cache" / "postgres"
        server_dir = self._server_dir()
        # One data folder per port, so a test can run a private server beside the main one.
        suffix = "" if port == DEFAULT_PORT else f"-{port}"
        self.data_dir = server_dir / f"data{suffix}"
        self.log_file = server_dir / f"postgres{suffix}.log"
        self.pid_file = self.cache / f"postgres{suffix}.pid"

    def _server_dir(self) -> Path:
        """`.cache/postgres`, or, when the server's account cannot reach the checkout, a folder of its own."""
        if self.os_user is None or self._reachable(self.root):
            return self.cache
        # e.g. a checkout under /root (mode 700): the data cannot live in it, so it lives beside it.
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        return Path("/var/tmp") / f"jobrelay-postgres-{digest}"  # noqa: S108 - up() checks that it is ours

    def _reachable(self, folder: Path) -> bool:
        check = ["runuser", "-u", str(self.os_user), "--", "test", "-x", str(folder)]
        return subprocess.run(check, capture_output=True, check=False).returncode == 0

    @property
    def address(self) -> str:
        """host:port the server listens on."""
        return f"{self.host}:{self.port}"

    @property
    def dsn(self) -> str:
        """The connection URL of the `jobrelay` database (libpq and asyncpg both read it)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    # -- commands ---------------------------------------------------------------------------

    def _run(self, tool: str, *args: str, as_server: bool = True, timeout: float = 120.0) -> str:
        """Run a PostgreSQL tool (as the server's account for server commands); its output, or raise."""
        command = [str(find_bin_dir() / tool), *args]
        if as_server and self.os_user is not None:
            command = ["runuser", "-u", self.os_user, "--", *command]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout, cwd="/")
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LocalPostgresError(f"{tool} failed: {exc}") from exc
        if result.returncode != 0:
            raise LocalPostgresError(f"{tool} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result.stdout

    def _give(self, path: Path) -> None:
        """Hand `path` to the server's account (when we are root)."""
        if self.os_user is not None:
            shutil.chown(path, self.os_user)

    def initialise(self) -> None:
        """`initdb` once into the data folder, then listen on 127.0.0.1:port only, with trust."""
        if (self.data_dir / "PG_VERSION").is_file():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # initdb wants the folder private
        self._give(self.data_dir)
        self._run(
            "initdb",
            *("-D", str(self.data_dir), "-U", self.user, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"),
        )
        (self.data_dir / "pg_hba.conf").write_text(_HBA)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# jobrelay's local server\n"
                f"listen_addresses = '{self.host}'\nport = {self.port}\nunix_socket_directories = ''\n"
            )

    # -- life cycle ---------------------------------------------------------------------------

    def running_pid(self) -> int | None:
        """The PID of the server we started, if it is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        ours = bool(cmdline) and cmdline[0].endswith(b"/postgres") and str(self.data_dir).encode() in cmdline
        return pid if ours else None

    def status(self) -> PostgresStatus:
        """Whether a server answers on our port, and whether it is ours."""
        return PostgresStatus(self.address, port_open(self.host, self.port), self.running_pid())

    def up(self, timeout: float = 60.0) -> bool:
        """Start the server unless one answers already, and create the database; True when this call started it."""
        if self.running_pid() is not None or port_open(self.host, self.port):
            self.ensure_database()
            return False
        self.cache.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.log_file.parent.stat().st_uid != os.geteuid():  # a folder someone else made for us: not ours
            raise LocalPostgresError(f"{self.log_file.parent} belongs to another user; remove it")
        self.initialise()
        self.log_file.touch()
        self._give(self.log_file)
        pg_ctl = ("-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", str(int(timeout)), "start")
        try:
            self._run("pg_ctl", *pg_ctl, timeout=timeout + 10)
        except LocalPostgresError as exc:
            raise LocalPostgresError(f"{exc}\n{self._log_tail()}") from exc
        # pg_ctl returns once the server accepts connections; the first line of postmaster.pid is its PID.
        pid = (self.data_dir / "postmaster.pid").read_text().splitlines()[0].strip()
        self.pid_file.write_text(f"{pid}\n")
        try:
            self.ensure_database()
        except LocalPostgresError:
            self.down()
            raise
        return True

    def ensure_database(self) -> None:
        """Create the `jobrelay` database unless it exists."""
        connect = ("-h", self.host, "-p", str(self.port), "-U", self.user, "-d", "postgres", "-X", "-q", "-t", "-A")
        query = f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"  # noqa: S608 - our own name
        if self._run("psql", *connect, "-c", query, as_server=False).strip() != "1":
            self._run("psql", *connect, "-c", f'CREATE DATABASE "{self.database}"', as_server=False)

    def down(self, grace: float = 30.0) -> bool:
        """Stop the server this project started (a fast shutdown); True when one was stopped."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(int(grace)), "stop")
        except LocalPostgresError:
            if self.running_pid() == pid:  # pg_ctl could not stop it: signal it ourselves
                stop_pid(pid, self.running_pid, None, grace)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
