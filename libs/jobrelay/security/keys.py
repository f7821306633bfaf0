"""API keys, tenants and per-tenant webhook secrets, in one file the services share without calling each other.

The key file (`JOBRELAY_AUTH_KEYS_FILE`, JSON, mode 0600) holds for every API key its id, tenant,
scopes and the SHA-256 of its secret part — never the key itself, which `jobrelay keys add`
prints once. It also holds each tenant's webhook signing secrets (several during a rotation)
and the server-side secret job ids are derived with (`id_secret`). The intake, the status
projector and the notifier read it and re-read it when it changes (`KeyRing.current()` looks
at its modification time at most once per `reload_s`), so a key added or revoked takes effect
within a few seconds, without a restart. Writers (the CLI) replace the file atomically.

A key looks like `jrk_<id>_<secret>`: the id finds the entry, the secret is compared by hash in
constant time. Keys are high-entropy random tokens, so a plain SHA-256 is the right hash (a slow
password hash buys nothing against 256 random bits and would cost every request).
"""

from __future__ import annotations

import base64
import contextlib
import enum
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "KEY_PREFIX",
    "ApiKey",
    "KeyFile",
    "KeyRing",
    "Keys",
    "Principal",
    "Scope",
    "new_key",
    "new_webhook_secret",
    "split_key",
]

KEY_PREFIX = "jrk_"
_VERSION = 1


class Scope(enum.StrEnum):
    """What a key may do."""

    SUBMIT = "submit"  # POST /v1/jobs
    READ = "read"  # status, result, list, streams
    CANCEL = "cancel"  # DELETE a job, re-run it
    ADMIN = "admin"  # every tenant's jobs, dead letters


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the tenant, the key (None behind a gateway) and what it may do."""

    tenant: str
    key_id: str | None
    scopes: frozenset[Scope]

    def may(self, scope: Scope) -> bool:
        """Whether the caller holds `scope` (admin holds every scope)."""
        return scope in self.scopes or Scope.ADMIN in self.scopes

    @property
    def admin(self) -> bool:
        """An operator key: sees every tenant."""
        return Scope.ADMIN in self.scopes


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as stored: never the key itself, only the hash of its secret part."""

    key_id: str
    tenant: str
    scopes: tuple[Scope, ...]
    sha256: str
    created_at: str
    revoked_at: str | None = None

    def principal(self) -> Principal:
        """The caller this key authenticates."""
        return Principal(self.tenant, self.key_id, frozenset(self.scopes))


@dataclass(frozen=True, slots=True)
class Keys:
    """The whole key file, parsed."""

    keys: dict[str, ApiKey] = field(default_factory=dict)
    webhook_secrets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tenant → whsec_ secrets
    id_secret: str = ""

    def check(self, key: str) -> Principal | None:
        """The principal of a presented key, or None (unknown, malformed, revoked, wrong secret)."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        entry = self.keys.get(key_id)
        if entry is None or entry.revoked_at is not None:
            return None
        if not hmac.compare_digest(entry.sha256, _hash(secret)):
            return None
        return entry.principal()

    def to_json(self) -> dict[str, Any]:
        """The file's document."""
        return {
            "version": _VERSION,
            "id_secret": self.id_secret,
            "keys": [
                {
                    "id": k.key_id,
                    "tenant": k.tenant,
                    "scopes": [s.value for s in k.scopes],
                    "sha256": k.sha256,
                    "created_at": k.created_at,
                    "revoked_at": k.revoked_at,
                }
                for k in self.keys.values()
            ],
            "webhook_secrets": {tenant: list(values) for tenant, values in self.webhook_secrets.items()},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Keys:
        """The document `to_json` wrote (ValueError for another version)."""
        if doc.get("version") != _VERSION:
            raise ValueError(f"key file version {doc.get('version')!r} is not {_VERSION}")
        keys = {
            entry["id"]: ApiKey(
                entry["id"],
                entry["tenant"],
                tuple(Scope(s) for s in entry["scopes"]),
                entry["sha256"],
                entry["created_at"],
                entry.get("revoked_at"),
            )
            for entry in doc.get("keys", [])
        }
        webhook = {tenant: tuple(values) for tenant, values in doc.get("webhook_secrets", {}).items()}
        return cls(keys, webhook, str(doc.get("id_secret", "")))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or not key_id.isalnum() or len(secret) < 16:
        return None
    return key_id, secret


def new_key(tenant: str, scopes: tuple[Scope, ...]) -> tuple[str, ApiKey]:
    """A fresh key (the text to hand out, once) and its stored entry."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    entry = ApiKey(key_id, tenant, scopes, _hash(secret), datetime.now(UTC).isoformat(timespec="seconds"))
    return f"{KEY_PREFIX}{key_id}_{secret}", entry


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class KeyFile:
    """The key file on disk: read it, and change it atomically under a lock (for the CLI)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Keys:
        """The keys (an empty set when the file does not exist yet)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return Keys()
        return Keys.from_json(json.loads(text))

    @contextlib.contextmanager
    def changing(self) -> Iterator[list[Keys]]:
        """Hold the lock; the caller puts the new Keys in the yielded one-element list; written atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            current = self.read()
            if not current.id_secret:
                current = replace(current, id_secret=secrets.token_urlsafe(32))
            box = [current]
            yield box
            self._write(box[0])

    def _write(self, keys: Keys) -> None:
        fd, temp = tempfile.mkstemp(prefix=self.path.name, dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)  # it holds webhook secrets and the id secret
            with os.fdopen(fd, "w") as out:
                json.dump(keys.to_json(), out, indent=2)
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def ensure_id_secret(self) -> str:
        """The id secret, created (with the file, if need be) the first time a service asks."""
        current = self.read().id_secret
        if current:
            return current
        with self.changing() as box:
            return box[0].id_secret

    def add(self, tenant: str, scopes: tuple[Scope, ...]) -> tuple[str, ApiKey]:
        """Create a key for `tenant` (printed once by the caller)."""
        text, entry = new_key(tenant, scopes)
        with self.changing() as box:
            box[0] = replace(box[0], keys={**box[0].keys, entry.key_id: entry})
        return text, entry

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by id (KeyError when there is none)."""
        with self.changing() as box:
            entry = box[0].keys[key_id]
            if entry.revoked_at is None:
                entry = replace(entry, revoked_at=datetime.now(UTC).isoformat(timespec="seconds"))
            box[0] = replace(box[0], keys={**box[0].keys, key_id: entry})
        return entry

    def webhook_secrets(self, tenant: str, *, rotate: bool = False, keep: int = 2) -> tuple[str, ...]:
        """The tenant's webhook secrets, newest first; `rotate` adds a new one and keeps the last `keep`."""
        with self.changing() as box:
            current = box[0].webhook_secrets.get(tenant, ())
            if rotate or not current:
                current = (new_webhook_secret(), *current)[:keep]
                box[0] = replace(box[0], webhook_secrets={**box[0].webhook_secrets, tenant: current})
        return current


class KeyRing:
    """The key file as the services see it: cached, re-read when its modification time changes."""

    def __init__(self, path: Path, reload_s: float = 1.0) -> None:
        self._file, self._reload_s = KeyFile(path), reload_s
        self._keys = Keys()
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")
        # FastAPI runs the (sync) auth dependency in worker threads: without the lock, a request that
        # came while another was loading the file saw the empty set and got a 401 (the first
        # requests after a start, e.g. every client reconnecting after a restart).
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """Where the key file is."""
        return self._file.path

    def current(self) -> Keys:
        """The keys, re-read if the file changed (looked at, at most, every `reload_s`)."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self._reload_s:
                try:
                    info = self._file.path.stat()
                    stamp: tuple[int, int] | None = (info.st_mtime_ns, info.st_size)
                except FileNotFoundError:
                    stamp = None
                if stamp != self._stamp:
                    self._keys = self._file.read() if stamp is not None else Keys()
                    self._stamp = stamp
                self._checked = now
            return self._keys
