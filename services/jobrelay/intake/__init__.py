"""The intake service: `POST /v1/jobs` answers 202 once the JobRequested record is on Kafka."""

__all__: list[str] = []
