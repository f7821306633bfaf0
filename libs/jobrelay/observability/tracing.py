"""OpenTelemetry: one tracer provider per process, W3C context carried in Kafka headers.

Spans follow the messaging semantic conventions (`messaging.system`, `messaging.destination.name`,
`messaging.operation.type`, …) and add `jobrelay.job_id`, so Jaeger finds a job by its id.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import Span, SpanKind

__all__ = [
    "JOB_ID_ATTRIBUTE",
    "KafkaHeaders",
    "configure_tracing",
    "consume_span",
    "extract_context",
    "inject_context",
    "is_recording",
    "make_tracer_provider",
    "produce_span",
]

JOB_ID_ATTRIBUTE = "jobrelay.job_id"
KafkaHeaders = list[tuple[str, bytes]]

# One tracer for the module: the SDK's get_tracer is not cheap (it builds an InstrumentationInfo
# under a warnings filter), and a proxy tracer follows the provider installed later.
_TRACER = trace.get_tracer("jobrelay.messaging")


class _HeaderSetter(Setter[KafkaHeaders]):
    def set(self, carrier: KafkaHeaders, key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value.encode()))


class _HeaderGetter(Getter[Sequence[tuple[str, bytes | None]]]):
    def get(self, carrier: Sequence[tuple[str, bytes | None]], key: str) -> list[str] | None:
        values = [v.decode(errors="replace") for k, v in carrier if k == key and v is not None]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes | None]]) -> list[str]:
        return [k for k, _ in carrier]


def make_tracer_provider(
    service: str, otlp_endpoint: str | None = None, *, record: bool | None = None
) -> TracerProvider:
    """A tracer provider for `service`; it exports over OTLP/HTTP when an endpoint is set.

    Spans are recorded when something exports them (`record` defaults to "an endpoint is set";
    OTEL_TRACES_SAMPLER then chooses the sampler, parent-based always-on by default). Otherwise
    the sampler is parent-based always-off: trace and span ids still exist, reach the logs and
    travel in Kafka headers, an upstream caller's sampled trace is still recorded, but our own
    root spans cost next to nothing (a recorded span going nowhere was 15-20 % of each service's
    CPU, bench/PROFILE.md).
    """
    record = bool(otlp_endpoint) if record is None else record
    sampler = None if record else ParentBased(ALWAYS_OFF)
    provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = otlp_endpoint.rstrip("/")
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    return provider


def configure_tracing(service: str, otlp_endpoint: str | None = None, *, record: bool | None = None) -> TracerProvider:
    """Install the process's tracer provider (`make_tracer_provider`)."""
    global _RECORDING
    provider = make_tracer_provider(service, otlp_endpoint, record=record)
    trace.set_tracer_provider(provider)
    _RECORDING = bool(otlp_endpoint) if record is None else record
    return provider


_RECORDING = True  # until configure_tracing says otherwise (tests install their own providers)


def is_recording() -> bool:
    """Whether this process records spans (an exporter is configured); hot paths skip the optional ones."""
    return _RECORDING


def inject_context(headers: KafkaHeaders) -> None:
    """Add W3C `traceparent`/`tracestate` for the current context to Kafka headers."""
    propagate.inject(headers, setter=_HeaderSetter())


def extract_context(headers: Sequence[tuple[str, bytes | None]]) -> otel_context.Context:
    """The trace context carried by Kafka headers (empty when none)."""
    return propagate.extract(headers, getter=_HeaderGetter())


def _messaging_attributes(operation: str, topic: str, job_id: str | None) -> dict[str, str]:
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.destination.name": topic,
    }
    if job_id:
        attributes[JOB_ID_ATTRIBUTE] = job_id
        attributes["messaging.kafka.message.key"] = job_id
    return attributes


@contextmanager
def produce_span(topic: str, job_id: str | None) -> Iterator[Span]:
    """A PRODUCER span named `send <topic>`; inject inside it so consumers become its children."""
    with _TRACER.start_as_current_span(
        f"send {topic}", kind=SpanKind.PRODUCER, attributes=_messaging_attributes("send", topic, job_id)
    ) as span:
        yield span


@contextmanager
def consume_span(
    topic: str, partition: int, offset: int, job_id: str | None, headers: Sequence[tuple[str, bytes | None]]
) -> Iterator[Span]:
    """A CONSUMER span named `process <topic>`, child of the producer's context in `headers`."""
    attributes = _messaging_attributes("process", topic, job_id)
    attributes["messaging.destination.partition.id"] = str(partition)
    attributes["messaging.kafka.offset"] = str(offset)
    with _TRACER.start_as_current_span(
        f"process {topic}", context=extract_context(headers), kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span
