"""structlog, OpenTelemetry and Prometheus, set up the same way in every service."""

from jobrelay.observability.logging import configure_logging, get_logger
from jobrelay.observability.tracing import (
    configure_tracing,
    consume_span,
    extract_context,
    inject_context,
    produce_span,
)

__all__ = [
    "configure_logging",
    "configure_tracing",
    "consume_span",
    "extract_context",
    "get_logger",
    "inject_context",
    "produce_span",
]
