"""What a service records when nothing exports its spans, and when something does."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from jobrelay.observability.tracing import make_tracer_provider
from tests.e2e.collector import collecting

UPSTREAM = SpanContext(trace_id=0x5CE0E9A56015FEC5AADFA328AE398115, span_id=0xAB54A98CEB1F0AD2, is_remote=True)


def _recorder(endpoint: str | None = None, record: bool | None = None) -> tuple[InMemorySpanExporter, object]:
    exporter = InMemorySpanExporter()
    provider = make_tracer_provider("svc", endpoint, record=record)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider.get_tracer("t")


def test_without_an_exporter_our_spans_are_not_recorded_but_still_carry_trace_ids() -> None:
    exporter, tracer = _recorder()
    with tracer.start_as_current_span("process job-requested") as span:  # type: ignore[attr-defined]
        ctx = span.get_span_context()
    assert not span.is_recording()
    assert ctx.is_valid and ctx.trace_id != 0  # the logs and the Kafka headers still get a trace id
    assert not ctx.trace_flags.sampled
    assert exporter.get_finished_spans() == ()


def test_an_upstream_sampled_trace_is_still_recorded_without_an_exporter() -> None:
    exporter, tracer = _recorder()
    sampled = SpanContext(
        UPSTREAM.trace_id, UPSTREAM.span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    with tracer.start_as_current_span("send job-requested", context=set_span_in_context(NonRecordingSpan(sampled))):  # type: ignore[attr-defined]
        pass
    (span,) = exporter.get_finished_spans()
    assert span.context is not None and span.context.trace_id == UPSTREAM.trace_id


def test_with_an_endpoint_every_root_span_is_recorded_and_exported_over_otlp() -> None:
    with collecting() as collector:
        provider = make_tracer_provider("jobrelay-intake", collector.endpoint)
        with provider.get_tracer("t").start_as_current_span("POST /v1/jobs"):
            pass
        assert provider.force_flush(timeout_millis=10_000)
        provider.shutdown()
    assert [(s.service, s.name) for s in collector.snapshot()] == [("jobrelay-intake", "POST /v1/jobs")]


def test_record_true_records_without_an_endpoint() -> None:
    exporter, tracer = _recorder(record=True)
    with tracer.start_as_current_span("x"):  # type: ignore[attr-defined]
        pass
    assert len(exporter.get_finished_spans()) == 1
