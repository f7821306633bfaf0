"""`topics ensure` against the real broker: creates, is idempotent, refuses a mismatch."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from confluent_kafka.admin import NewTopic

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.topics import TopicMismatchError, admin_client, ensure_topics

pytestmark = pytest.mark.kafka


def test_ensure_creates_all_four_with_one_partition_count_and_is_idempotent(kafka_settings: KafkaSettings) -> None:
    settings = TopicSettings(prefix=f"e{uuid.uuid4().hex[:8]}.", partitions=4, retention_ms=3_600_000)
    first = ensure_topics(kafka_settings, settings)
    second = ensure_topics(kafka_settings, settings)
    assert sorted(first.created) == sorted(settings.all()) and first.existing == ()
    assert second.created == () and sorted(second.existing) == sorted(settings.all())
    metadata = admin_client(kafka_settings).list_topics(timeout=10)
    assert {len(metadata.topics[name].partitions) for name in settings.all()} == {4}


def test_ensure_refuses_mismatched_partition_counts_and_says_what_to_do(kafka_settings: KafkaSettings) -> None:
    settings = TopicSettings(prefix=f"m{uuid.uuid4().hex[:8]}.", partitions=3)
    admin = admin_client(kafka_settings)
    admin.create_topics([NewTopic(settings.completed, 2, 1)])[settings.completed].result()
    with pytest.raises(TopicMismatchError) as caught:
        ensure_topics(kafka_settings, settings)
    message = str(caught.value)
    assert f"{settings.completed} has 2" in message
    assert "JOBRELAY_TOPICS_PARTITIONS=2" in message and "--partitions 3" in message
    metadata = admin_client(kafka_settings).list_topics(timeout=10)
    assert settings.requested not in metadata.topics, "nothing is created when the check fails"


def test_cli_topics_ensure_exits_2_on_mismatch(kafka_settings: KafkaSettings) -> None:
    prefix = f"c{uuid.uuid4().hex[:8]}."
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "JOBRELAY_TOPICS_PREFIX": prefix,
        "PATH": "/usr/bin:/bin",
        "COLUMNS": "200",
    }
    cli = [sys.executable, "-m", "jobrelay.cli.main", "topics", "ensure"]
    ok = subprocess.run([*cli, "--partitions", "2"], env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and f"created {prefix}job-dlq (2 partitions)" in ok.stderr
    bad = subprocess.run([*cli, "--partitions", "5"], env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "same partition count" in bad.stderr
