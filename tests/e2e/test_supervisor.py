"""`jobrelay dev up` (`make run`) restarts a service that dies, and gives up on one that keeps dying."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

NAMES = ("intake", "projector", "notifier", "processor")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _until(condition: Callable[[], bool], what: str, deadline: float = 90.0) -> None:
    stop = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < stop, f"not in {deadline:.0f} s: {what}"
        time.sleep(0.1)


class DevUp:
    """`jobrelay dev up` running in the foreground, with its own ports, topics and run directory."""

    def __init__(self, kafka_bootstrap: str, run_dir: Path) -> None:
        run = uuid.uuid4().hex[:8]
        self.run_dir, self.log = run_dir, run_dir / "dev-up.out"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("JOBRELAY_")},
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "JOBRELAY_TOPICS_PREFIX": f"sup{run}.",
            "JOBRELAY_TOPICS_PARTITIONS": "2",
            "JOBRELAY_NOTIFIER_GROUP_ID": f"sup{run}-notifier",
            "JOBRELAY_PROCESSOR_GROUP_ID": f"sup{run}-processor",
            "JOBRELAY_PROCESSOR_TRANSACTIONAL_ID_PREFIX": f"sup{run}",
            "COLUMNS": "200",
            **{f"JOBRELAY_{name.upper()}_PORT": str(_free_port()) for name in NAMES},
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            command = [sys.executable, "-m", "jobrelay.cli.main", "dev", "up", "--run-dir", str(run_dir),
                       "--max-restarts", "2", "--restart-backoff", "0.5"]  # fmt: skip
            self.proc = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pid(self, name: str) -> int | None:
        try:
            pid = int((self.run_dir / f"{name}.pid").read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def status(self) -> str:
        command = [sys.executable, "-m", "jobrelay.cli.main", "dev", "status", "--run-dir", str(self.run_dir)]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60, check=False).stderr

    def restarts(self, name: str) -> int:
        row = next(line for line in self.status().splitlines() if f" {name} " in line)
        return int(row.split("│")[-2].strip())


@pytest.fixture
def dev_up(kafka_bootstrap: str, tmp_path: Path) -> Iterator[DevUp]:
    running = DevUp(kafka_bootstrap, tmp_path / "stack")
    try:
        _until(lambda: "Running." in running.output() or running.proc.poll() is not None, "the stack up", 150)
        assert running.proc.poll() is None, running.output()
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.send_signal(signal.SIGTERM)
            running.proc.wait(timeout=90)


def _gone(dev_up: DevUp, name: str, pid: int) -> Callable[[], bool]:
    return lambda: dev_up.pid(name) != pid


def test_a_killed_service_is_restarted_and_one_that_keeps_dying_is_left_down(dev_up: DevUp) -> None:
    first = dev_up.pid("projector")
    assert first is not None
    os.kill(first, signal.SIGKILL)
    _until(lambda: dev_up.pid("projector") not in (None, first), "the projector restarted")
    assert "the projector exited (killed by signal 9); restarting it" in dev_up.output()
    _until(lambda: "restarted the projector (restart 1)" in dev_up.output(), "the restart printed")
    assert dev_up.restarts("projector") == 1, "jobrelay dev status shows the restart"
    assert dev_up.restarts("intake") == 0

    for _ in range(2):  # two more deaths within the minute: past --max-restarts 2
        pid = dev_up.pid("projector")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _until(_gone(dev_up, "projector", pid), "the projector gone")
        _until(lambda: dev_up.pid("projector") is not None or "leaving it down" in dev_up.output(), "a verdict")
    _until(lambda: "leaving it down" in dev_up.output(), "the supervisor gave up")
    assert "the projector exited (killed by signal 9) 3 times within 60 s: leaving it down" in dev_up.output()
    assert dev_up.pid("projector") is None and dev_up.proc.poll() is None, "left down; the rest keeps running"
    assert dev_up.pid("intake") is not None

    dev_up.proc.send_signal(signal.SIGTERM)
    assert dev_up.proc.wait(timeout=90) == 0
    assert all(dev_up.pid(name) is None for name in NAMES), "SIGTERM stops everything it started"
