"""docker-compose.yml runs the Apache Kafka that local runs and tests fetch (streams/apache_kafka/pom.xml),
as three nodes that keep their data on named volumes, and the workers know all three and sign
checkpoints with a key mounted as a secret."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.apache_kafka import KAFKA_VERSION
from streams.config import StreamConfig

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text(encoding="utf-8"))
NODES = ["kafka-1", "kafka-2", "kafka-3"]


def test_the_compose_file_runs_three_nodes_of_the_kafka_version_of_the_pom():
    assert [name for name in COMPOSE["services"] if name.startswith("kafka")] == NODES
    for name in NODES:
        assert COMPOSE["services"][name]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    ids = [COMPOSE["services"][name]["environment"]["KAFKA_NODE_ID"] for name in NODES]
    assert ids == [1, 2, 3]
    voters = COMPOSE["services"]["kafka-1"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"


def test_each_node_keeps_its_data_on_a_named_volume_of_its_own():
    seen = set()
    for name in NODES:
        kafka = COMPOSE["services"][name]
        volumes = {target: volume for volume, target in (v.split(":", 1) for v in kafka["volumes"])}
        volume = volumes[kafka["environment"]["KAFKA_LOG_DIRS"]]
        assert volume in COMPOSE["volumes"] and volume not in seen
        seen.add(volume)


def test_the_workers_bootstrap_from_every_node():
    env = COMPOSE["services"]["worker-1"]["environment"]
    config = StreamConfig.from_env(env={"SUBSIDY_BROKER": env["SUBSIDY_BROKER"]})
    assert config.bootstrap == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert config.broker == "kafka://kafka-1:9092;kafka://kafka-2:9092;kafka://kafka-3:9092"


def test_the_workers_sign_checkpoints_with_a_key_mounted_as_a_secret():
    """The key comes from a file outside the image, the database and the environment, and only the workers get it."""
    for name in ("worker-1", "worker-2"):
        worker = COMPOSE["services"][name]
        config = StreamConfig.from_env(env={"SUBSIDY_CHECKPOINT_KEY": worker["environment"]["SUBSIDY_CHECKPOINT_KEY"]})
        assert worker["secrets"] == ["checkpoint_key"] and config.checkpoint_key == "/run/secrets/checkpoint_key"
    assert COMPOSE["secrets"]["checkpoint_key"] == {"file": "${SUBSIDY_CHECKPOINT_KEY_FILE:-./secrets/checkpoint.pem}"}
    assert [name for name, service in COMPOSE["services"].items() if "secrets" in service] == ["worker-1", "worker-2"]
