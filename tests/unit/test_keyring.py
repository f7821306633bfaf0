"""The services' key ring under concurrent first requests (FastAPI runs auth in worker threads)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jobrelay.security.keys import KeyFile, KeyRing, Keys, Scope


def test_requests_arriving_while_the_file_loads_see_its_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = KeyFile(tmp_path / "keys.json")
    text, _ = keys.add("dev", (Scope.READ,))
    ring = KeyRing(keys.path, reload_s=60)
    loading = threading.Event()
    read = KeyFile.read

    def slow_read(self: KeyFile) -> Keys:
        loading.set()
        time.sleep(0.2)  # a slow disk: the other request arrives while this one loads
        return read(self)

    monkeypatch.setattr(KeyFile, "read", slow_read)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(lambda: ring.current().check(text))
        assert loading.wait(5)
        second = pool.submit(lambda: ring.current().check(text))
        assert first.result(5) is not None
        assert second.result(5) is not None, "a request during the first load was told the key is unknown"
