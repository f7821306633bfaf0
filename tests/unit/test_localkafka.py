"""The local broker launcher, without starting a broker."""

from __future__ import annotations

from pathlib import Path

from jobrelay.dev.localkafka import LocalKafka, project_root


def test_status_of_a_port_nobody_listens_on(tmp_path: Path) -> None:
    broker = LocalKafka(root=tmp_path, port=1, controller_port=2)
    status = broker.status()
    assert not status.reachable and status.pid is None
    assert status.describe() == "no Kafka broker on 127.0.0.1:1"
    assert broker.down() is False, "down() never stops a process it did not start"


def test_config_is_rendered_for_kraft_combined_mode(tmp_path: Path) -> None:
    broker = LocalKafka(root=project_root(), port=19092, controller_port=19093)
    broker.run_dir = tmp_path
    broker.config_file = tmp_path / "server.properties"
    broker._render_config()
    config = dict(
        line.split("=", 1) for line in broker.config_file.read_text().splitlines() if line and not line.startswith("#")
    )
    assert config["process.roles"] == "broker,controller"
    assert config["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert config["group.initial.rebalance.delay.ms"] == "0"
    assert config["offsets.topic.replication.factor"] == "1"
    assert config["transaction.state.log.replication.factor"] == "1"
