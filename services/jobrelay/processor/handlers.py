"""The handler API: what a job handler module imports, and how the processor finds handlers.

A handler is a plain async function registered by job type::

    from jobrelay.processor.handlers import Job, PermanentError, Progress, handler

    @handler("report.generate")
    async def generate(job: Job, progress: Progress) -> dict[str, str]:
        await progress(50, "half way")
        return {"url": "..."}

`@handler` only tags the function; importing a module registers nothing globally. The processor
imports the modules named in its settings and collects the tagged functions into a `Registry`, so
two processors in one test process never share state. What a handler raises decides what happens:
`PermanentError` fails the job at once; `RetryableError` (optionally with a delay) and any other
exception retry it with backoff until `max_attempts`; running past the timeout is retried too.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

__all__ = [
    "Handler",
    "Job",
    "PermanentError",
    "Progress",
    "Registry",
    "RetryableError",
    "handler",
    "load_registry",
]

_TYPE_ATTRIBUTE = "__jobrelay_job_type__"
_VALID_TYPE = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


@dataclass(frozen=True, slots=True)
class Job:
    """One attempt at a job, as its handler sees it."""

    id: str
    type: str
    payload: Any  # the request's JSON payload, parsed
    attempt: int  # 1 for the first run; more after a retry or a crash re-run
    max_attempts: int
    deadline: datetime  # when this attempt's timeout cancels the handler
    expires_at: datetime | None = None
    callback_url: str | None = None
    client_id: str | None = None


class Progress(Protocol):
    """Reports progress of the running job (a JobProgress event, visible once committed)."""

    async def __call__(self, percent: float | None = None, message: str | None = None) -> None:
        """Report `percent` done (0-100) and/or a human-readable `message`."""


Handler = Callable[[Job, Progress], Awaitable[Any]]
H = TypeVar("H", bound=Handler)


class PermanentError(Exception):
    """Raise from a handler to fail the job at once, without retrying (code "handler_error")."""


class RetryableError(Exception):
    """Raise from a handler to retry the job, after `delay_s` seconds or the usual backoff."""

    def __init__(self, message: str, *, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s


def handler(job_type: str) -> Callable[[H], H]:
    """Mark an async function as the handler of `job_type` (found when its module is loaded)."""
    if not _VALID_TYPE.match(job_type):
        raise ValueError(f"invalid job type {job_type!r}: use letters, digits, '.', '_' or '-'")

    def mark(function: H) -> H:
        setattr(function, _TYPE_ATTRIBUTE, job_type)
        return function

    return mark


class Registry:
    """Handlers by job type."""

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = dict(handlers or {})

    def add(self, job_type: str, function: Handler) -> None:
        """Register `function` for `job_type`; a type has exactly one handler."""
        existing = self._handlers.get(job_type)
        if existing is not None and existing is not function:
            raise ValueError(f"job type {job_type!r} has two handlers: {_name(existing)} and {_name(function)}")
        self._handlers[job_type] = function

    def get(self, job_type: str) -> Handler | None:
        """The handler of `job_type`, or None when no module registered one."""
        return self._handlers.get(job_type)

    def types(self) -> list[str]:
        """Every registered job type, sorted."""
        return sorted(self._handlers)


def load_registry(modules: Iterable[str]) -> Registry:
    """Import each dotted module path and register every function tagged with `@handler`."""
    registry = Registry()
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            job_type = getattr(value, _TYPE_ATTRIBUTE, None)
            if isinstance(job_type, str) and callable(value):
                registry.add(job_type, value)
    return registry


def _name(function: Handler) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"
