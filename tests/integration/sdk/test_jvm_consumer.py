"""A Java consumer (Apache Kafka client, Apache Avro's BinaryMessageDecoder) reads what jobrelay writes.

tests/jvm/consumer is built with Maven into .cache/jvm-consumer once (offline when the local
repository has everything, else online) and rebuilt only when its pom or source changes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import TerminalStatus
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.schemas import load_schemas
from tests.integration.sdk.outcomes import outcome, publish, send_raw

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]
PROJECT = ROOT / "tests" / "jvm" / "consumer"
BUILD = ROOT / ".cache" / "jvm-consumer"
JAR = BUILD / "jobrelay-jvm-consumer-1.jar"
COMPLETED = "jobrelay.events.JobCompleted"


def _sources() -> list[Path]:
    return [PROJECT / "pom.xml", *PROJECT.rglob("*.java")]


def _build(mvn: str) -> None:
    if JAR.exists() and all(JAR.stat().st_mtime > source.stat().st_mtime for source in _sources()):
        return
    goals = [mvn, "-q", "-B", "-f", str(PROJECT / "pom.xml"), "package", "dependency:copy-dependencies"]
    offline = subprocess.run([goals[0], "-o", *goals[1:]], capture_output=True, text=True, timeout=300)
    if offline.returncode != 0:  # something is not in ~/.m2 yet: fetch it from Maven Central
        online = subprocess.run(goals, capture_output=True, text=True, timeout=600)
        assert online.returncode == 0, f"mvn package failed:\n{online.stdout}{online.stderr}"


@pytest.fixture(scope="session")
def java_consumer() -> list[str]:
    """The command that runs the built Java consumer (arguments: bootstrap, topic, schema folder)."""
    mvn, javac, java = shutil.which("mvn"), shutil.which("javac"), shutil.which("java")
    if mvn is None or javac is None or java is None:
        pytest.skip("needs Maven and a JDK (mvn, javac): `.ci/run` installs them (maven, openjdk-17-jdk-headless)")
    _build(mvn)
    classpath = f"{BUILD / 'classes'}:{BUILD / 'dependency'}/*"
    return [java, "-cp", classpath, "dev.jobrelay.consumer.CompletedConsumer"]


def _read_with_java(command: list[str], kafka: KafkaSettings, topic: str) -> tuple[list[dict[str, Any]], str]:
    done = subprocess.run(
        [*command, kafka.bootstrap_servers, topic, str(ROOT / "schemas" / "job-completed")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr


async def test_a_java_consumer_decodes_jobrelays_completions(
    kafka_settings: KafkaSettings, topics: TopicSettings, java_consumer: list[str]
) -> None:
    succeeded, failed = outcome("report.daily"), outcome("image.resize", TerminalStatus.FAILED)
    old_writer = outcome("report.daily")  # written by a jobrelay that still wrote v1
    await publish(kafka_settings, topics, [succeeded, failed], aborted=[outcome()])
    await publish(kafka_settings, topics, [old_writer], codec=AvroCodec(pin={COMPLETED: 1}))
    poison_offset = await send_raw(kafka_settings, topics.completed, b"\xc3\x01" + b"\x00" * 8 + b"junk", partition=2)

    rows, stderr = _read_with_java(java_consumer, kafka_settings, topics.completed)

    by_job = {row["key"]: row for row in rows}
    assert sorted(by_job) == sorted([succeeded.job_id, failed.job_id, old_writer.job_id]), "nothing rolled back"
    ok, bad, old = by_job[succeeded.job_id]["event"], by_job[failed.job_id]["event"], by_job[old_writer.job_id]["event"]
    assert (ok["job_id"], ok["status"], json.loads(ok["result"])) == (
        succeeded.job_id,
        "SUCCEEDED",
        json.loads(succeeded.result or ""),
    )
    assert failed.error is not None
    assert (bad["status"], bad["result"], bad["error"]["code"]) == ("FAILED", None, failed.error.code)
    assert (old["status"], old["job_type"], old["tenant"]) == ("SUCCEEDED", "report.daily", None), "v2 defaults"
    fingerprints = {f"v{v.version}.avsc": v.fingerprint.hex() for v in load_schemas().versions if v.name == COMPLETED}
    assert {(r["writer_schema"], r["fingerprint"]) for r in rows} == set(fingerprints.items())
    assert by_job[old_writer.job_id]["writer_schema"] == "v1.avsc"
    headers = by_job[succeeded.job_id]["headers"]
    assert headers["ce_type"] == "jobrelay.job.completed.v1" and headers["ce_subject"] == succeeded.job_id
    assert headers["content-type"] == "application/avro" and headers["traceparent"].startswith("00-")
    assert f"{topics.completed}/2@{poison_offset}" in stderr, "the poison record is reported and skipped"
