"""SQLite view files as generations behind one symlink, so a rebuild can swap in atomically.

`db_path` is a symlink to `<name>.g<n>`; a rebuild writes a new generation next to it and then
replaces the symlink with `os.replace` (atomic on POSIX). SQLite is always opened at the
resolved generation path, so each generation keeps its own -wal and -shm files and a swap
never pairs a database with another one's write-ahead log.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

__all__ = ["current", "new_generation", "older_generations", "swap"]


def _generation(db_path: Path, number: int) -> Path:
    return db_path.with_name(f"{db_path.name}.g{number}")


def _number(path: Path) -> int:
    match = re.search(r"\.g(\d+)(?:-wal|-shm)?$", path.name)
    return int(match.group(1)) if match else -1


def current(db_path: Path) -> Path:
    """The generation `db_path` points at, creating the first one (and the symlink) if none exists."""
    if db_path.is_symlink():
        return db_path.resolve()
    if db_path.exists():
        return db_path  # a plain file, e.g. copied by hand: used as it is until a rebuild replaces it
    db_path.parent.mkdir(parents=True, exist_ok=True)
    first = new_generation(db_path)
    swap(db_path, first)
    return first


def new_generation(db_path: Path) -> Path:
    """A path for a fresh generation, later than every existing one."""
    return _generation(db_path, time.time_ns())


def swap(db_path: Path, generation: Path) -> None:
    """Point `db_path` at `generation`, atomically: readers see the old or the new one, never neither."""
    temporary = db_path.with_name(f".{db_path.name}.swap-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(generation.name)
    os.replace(temporary, db_path)


def older_generations(db_path: Path, generation: Path) -> list[Path]:
    """Files of generations older than `generation` (safe to delete once nobody has them open)."""
    pattern = f"{db_path.name}.g*"
    older = {p for p in db_path.parent.glob(pattern) if _number(p) < _number(generation)}
    return sorted(p for base in older for p in _with_sidecars(base) if p.exists())


def _with_sidecars(base: Path) -> list[Path]:
    if base.name.endswith(("-wal", "-shm")):
        return [base]
    return [base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm")]
