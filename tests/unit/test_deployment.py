"""docker-compose.yml runs the Apache Kafka that local runs and tests fetch (streams/apache_kafka/pom.xml),
and keeps its data on a named volume."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.apache_kafka import KAFKA_VERSION

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text(encoding="utf-8"))


def test_the_compose_file_runs_the_kafka_version_of_the_pom():
    assert COMPOSE["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_kafka_keeps_its_data_on_a_named_volume():
    kafka = COMPOSE["services"]["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    volumes = dict(volume.split(":", 1) for volume in kafka["volumes"])
    assert {target: name for name, target in volumes.items()}[log_dirs] in COMPOSE["volumes"]
