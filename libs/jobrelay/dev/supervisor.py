"""`jobrelay dev up` in the foreground supervises what it started, as a process supervisor would.

A service that exits while nobody asked it to (a crash, a kill -9) is started again after a
backoff that doubles with each restart in a row (1 s, 2 s, 4 s … up to `max_backoff_s`) and
resets once the service has stayed up for `stable_s`. A service that exits more than
`max_restarts` times within `window_s` is left down, with a message saying so and where its log
is, instead of looping fast. Each restart is printed and counted in `<run dir>/<name>.restarts`,
which `jobrelay dev status` shows.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["RestartPolicy", "Supervisor", "Verdict"]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When to restart an exited service, and when to give up on it."""

    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_restarts: int = 5
    window_s: float = 60.0
    stable_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do about a service that exited: restart it after `delay_s`, or leave it down."""

    restart: bool
    delay_s: float
    restarts_in_window: int


@dataclass
class _History:
    exits: deque[float] = field(default_factory=deque)
    in_a_row: int = 0
    last_start: float = 0.0


class Supervisor:
    """The restart decisions for a set of services (pure: time is passed in; the caller acts)."""

    def __init__(self, policy: RestartPolicy | None = None) -> None:
        self.policy = policy or RestartPolicy()
        self._history: dict[str, _History] = {}

    def started(self, name: str, now: float) -> None:
        """`name` was (re)started at `now`."""
        self._history.setdefault(name, _History()).last_start = now

    def exited(self, name: str, now: float) -> Verdict:
        """`name` exited unexpectedly at `now`: restart it after a delay, or give up."""
        policy, history = self.policy, self._history.setdefault(name, _History(last_start=now))
        if now - history.last_start >= policy.stable_s:
            history.in_a_row = 0  # it had been up long enough: this is a fresh failure, not a loop
        history.exits.append(now)
        while history.exits and now - history.exits[0] > policy.window_s:
            history.exits.popleft()
        count = len(history.exits)
        if count > policy.max_restarts:
            return Verdict(False, 0.0, count)
        delay = min(policy.backoff_s * 2**history.in_a_row, policy.max_backoff_s)
        history.in_a_row += 1
        return Verdict(True, delay, count)


def run_supervised(
    poll: Callable[[], dict[str, int | None]],
    restart: Callable[[str], None],
    report: Callable[[str], None],
    stopping: Callable[[], bool],
    supervisor: Supervisor,
    *,
    clock: Callable[[], float] = time.monotonic,
    interval_s: float = 0.5,
) -> None:
    """Watch the services until `stopping()`; restart those that exit, as `supervisor` decides.

    `poll()` gives each supervised service's exit code (None while it runs); `restart(name)`
    starts it again; `report(text)` tells the user.
    """
    due: dict[str, float] = {}  # name -> when to restart it
    given_up: set[str] = set()
    for name in poll():
        supervisor.started(name, clock())
    while not stopping():
        now = clock()
        for name, code in poll().items():
            if code is None or name in due or name in given_up:
                continue
            verdict = supervisor.exited(name, now)
            if verdict.restart:
                due[name] = now + verdict.delay_s
                report(f"the {name} exited ({_how(code)}); restarting it in {verdict.delay_s:g} s")
            else:
                given_up.add(name)
                report(
                    f"the {name} exited ({_how(code)}) {verdict.restarts_in_window} times within "
                    f"{supervisor.policy.window_s:g} s: leaving it down (see its log; `jobrelay dev up` again "
                    "starts what is missing)"
                )
        for name, when in list(due.items()):
            if now >= when and not stopping():
                del due[name]
                restart(name)
                supervisor.started(name, clock())
        time.sleep(interval_s)


def _how(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"
