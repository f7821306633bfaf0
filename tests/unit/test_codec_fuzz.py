"""Property tests of the codec: any bytes decode to an event or raise SerializationError, never anything else.

A consumer dead-letters what raises SerializationError and keeps going; any other exception
would stop its partition. So whatever a producer puts on a topic — random bytes, a valid record
cut short or with bytes flipped, a right marker with a wrong fingerprint — must end in one of
the two.
"""

from __future__ import annotations

import contextlib
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobrelay.jobs.events import JobCompleted, JobProgress, JobRequested, ProgressKind, TerminalStatus
from jobrelay.jobs.sequence import sequence, terminal_sequence
from jobrelay.messaging.codec import AvroCodec, SerializationError

CODEC = AvroCodec()
JOB = str(uuid.uuid4())
VALID = [
    CODEC.encode(JobRequested(job_id=JOB, job_type="demo.echo", payload='{"n": 1}', request_hash="h")),
    CODEC.encode(
        JobProgress(
            job_id=JOB, job_type="t", sequence=sequence(1, 2), kind=ProgressKind.PROGRESS, percent=50.0, message="half"
        )
    ),
    CODEC.encode(
        JobCompleted(
            job_id=JOB, job_type="t", sequence=terminal_sequence(1), status=TerminalStatus.SUCCEEDED, result='{"a": 1}'
        )
    ),
]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decodes_or_refuses(data: bytes) -> None:
    with contextlib.suppress(SerializationError):  # dead-lettered by the consumer
        CODEC.decode(data, topic="t", partition=0, offset=0)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_decode_or_raise_serialization_error(data: bytes) -> None:
    _decodes_or_refuses(data)


@FUZZ
@given(st.binary(max_size=256))
def test_the_marker_and_a_known_fingerprint_followed_by_junk(tail: bytes) -> None:
    for valid in VALID:
        _decodes_or_refuses(valid[:10] + tail)


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_a_valid_record_cut_short_or_with_a_byte_changed(valid: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(valid)))
    _decodes_or_refuses(valid[:cut])
    where = data.draw(st.integers(min_value=0, max_value=len(valid) - 1))
    value = data.draw(st.integers(min_value=0, max_value=255))
    _decodes_or_refuses(valid[:where] + bytes([value]) + valid[where + 1 :])


def test_a_tombstone_is_refused_by_name() -> None:
    with pytest.raises(SerializationError, match=r"tombstone.*offset 2"):
        CODEC.decode(None, topic="t", partition=1, offset=2)
