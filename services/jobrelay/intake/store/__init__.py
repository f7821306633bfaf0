"""Where the intake remembers Idempotency-Keys (SQLite: one file per replica)."""

from jobrelay.intake.store.sqlite import IdempotencyStore

__all__ = ["IdempotencyStore"]
