"""The local PostgreSQL launcher, without starting a server (the store tests start the real one)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobrelay.dev.localpostgres import DEFAULT_PORT, LocalPostgres, find_bin_dir


def test_status_of_a_port_nobody_listens_on(tmp_path: Path) -> None:
    server = LocalPostgres(root=tmp_path, port=1)
    status = server.status()
    assert not status.reachable and status.pid is None
    assert status.describe() == "no PostgreSQL server on 127.0.0.1:1"
    assert server.down() is False, "down() never stops a process it did not start"


def test_a_pid_file_naming_someone_elses_process_is_not_ours(tmp_path: Path) -> None:
    server = LocalPostgres(root=tmp_path, port=1)
    server.pid_file.parent.mkdir(parents=True)
    server.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a postgres on our data folder
    assert server.running_pid() is None
    assert server.down() is False and not server.pid_file.exists()


def test_its_own_port_and_database(tmp_path: Path) -> None:
    server = LocalPostgres(root=tmp_path)
    assert (server.port, server.dsn) == (DEFAULT_PORT, "postgresql://jobrelay@127.0.0.1:54329/jobrelay")
    assert DEFAULT_PORT != 5432, "never the port of a system cluster"


def test_the_binaries_are_found_or_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert (find_bin_dir() / "pg_ctl").is_file()
    monkeypatch.setenv("JOBRELAY_POSTGRES_BIN", str(tmp_path))
    assert find_bin_dir() == tmp_path
