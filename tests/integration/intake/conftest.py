"""A running intake per test, on fresh topics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from tests.integration.intakeserver import intake_settings, running_intake


@pytest.fixture
def intake_url(kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> Iterator[str]:
    """Base URL of a ready intake writing to this test's topics."""
    settings = intake_settings(tmp_path, status_base_url="http://status.test:8001")
    with running_intake(settings, kafka_settings, topics) as url:
        yield url
