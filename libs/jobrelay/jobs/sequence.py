"""Per-job sequence numbers: one ordering for every event of a job, across attempts.

JobRequested is 0. Attempt k's events are numbered k * STRIDE + n (n = 1, 2, … in the order the
processor emits them), and the terminal event of attempt k is k * STRIDE + STRIDE - 1, so a later
attempt always sorts after an earlier one (a crash re-run is a new attempt), and the terminal
event sorts after everything of its attempt. The view ignores any event whose sequence is not
higher than the last one it applied.
"""

from __future__ import annotations

__all__ = ["REQUESTED", "STRIDE", "attempt_of", "sequence", "terminal_sequence"]

REQUESTED = 0
STRIDE = 1_000_000


def sequence(attempt: int, n: int) -> int:
    """The sequence number of the n-th event (from 1) of `attempt` (from 1)."""
    if attempt < 1 or not 1 <= n < STRIDE - 1:
        raise ValueError(f"attempt {attempt}, event {n} out of range")
    return attempt * STRIDE + n


def terminal_sequence(attempt: int) -> int:
    """The sequence number of the terminal event (JobCompleted, or a dead letter) of `attempt`."""
    if attempt < 1:
        raise ValueError(f"attempt {attempt} out of range")
    return attempt * STRIDE + STRIDE - 1


def attempt_of(seq: int) -> int:
    """The attempt a sequence number belongs to (0 for the request itself)."""
    return seq // STRIDE
