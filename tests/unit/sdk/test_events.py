"""What events() makes of a stream's events: documents in order, no repeats, done when every job is."""

from __future__ import annotations

import json

import httpx
from httpx_sse import ServerSentEvent

from jobrelay.sdk import JobClient
from jobrelay.sdk._http import ClientConfig
from jobrelay.sdk.events import Follow


def _status(job: str, status: str, sequence: int) -> ServerSentEvent:
    return ServerSentEvent("status", json.dumps({"id": job, "type": "demo.sleep", "status": status}), str(sequence))


def test_several_jobs_ride_the_many_job_stream_and_resume_after_the_last_id() -> None:
    follow = Follow(ClientConfig(status_base_url="http://view/"), ["a", "b"], after=None)
    assert (follow.url, follow.params) == ("http://view/v1/events", [("job", "a"), ("job", "b")])
    assert "Last-Event-ID" not in follow.request_headers()
    views = [follow.accept(e) for e in (_status("a", "running", 3), _status("b", "succeeded", 4))]
    assert [(v.id, v.status, v.sequence) for v in views if v] == [("a", "running", 3), ("b", "succeeded", 4)]
    assert follow.request_headers()["Last-Event-ID"] == "4" and not follow.done


def test_repeats_and_keep_alives_are_skipped_and_the_end_is_when_every_job_is_terminal() -> None:
    follow = Follow(ClientConfig(), ["a", "b"], after=10)
    assert follow.accept(_status("a", "running", 9)) is None, "not newer than what we had"
    assert follow.accept(ServerSentEvent("message", "", "10")) is None, "a keep-alive carries the last id"
    assert follow.accept(ServerSentEvent("open", "{}", "11")) is None
    assert follow.accept(_status("a", "failed", 12)) is not None and not follow.done
    assert follow.accept(_status("b", "cancelled", 13)) is not None and follow.done


def test_one_job_rides_its_own_stream_and_a_204_means_it_is_over() -> None:
    follow = Follow(ClientConfig(status_base_url="http://view"), ["a"], after=7)
    assert (follow.url, follow.params) == ("http://view/v1/jobs/a/events", [])
    assert not follow.opened(httpx.Response(204)) and follow.done


def test_the_tenant_stream_never_ends_by_itself() -> None:
    follow = Follow(ClientConfig(status_base_url="http://view"), None, after=None)
    assert (follow.url, follow.params) == ("http://view/v1/events", [])
    follow.accept(_status("a", "succeeded", 1))
    assert not follow.done


def test_leaving_the_loop_early_closes_the_stream_quietly() -> None:
    body = "".join(
        f'id: {n}\nevent: status\ndata: {{"id": "a", "type": "demo.sleep", "status": "running"}}\n\n' for n in (1, 2)
    )
    answer = httpx.Response(200, headers={"content-type": "text/event-stream"}, text=body)
    http = httpx.Client(transport=httpx.MockTransport(lambda request: answer))
    with JobClient(status_base_url="http://view", http=http) as client:
        seen = []
        for view in client.events(["a"]):
            seen.append(view)
            break  # the generator is closed here: no error, no retry
        assert not http.is_closed
    assert [(v.id, v.sequence) for v in seen] == [("a", 1)]
