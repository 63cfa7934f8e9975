"""Fixtures of the pipeline tests (tests/integration/test_pipeline.py)."""

from __future__ import annotations

import pytest

from bench.common import fresh_database
from pipeline_support import docker_answers
from streams.apache_kafka import KAFKA_VERSION, ApacheKafka


@pytest.fixture
def kafka_bootstrap(tmp_path):
    """Apache Kafka, production's broker, fresh for each test (the contract fixes the topic
    names, so tests cannot share one): in a container where a Docker engine answers, else
    started here from Maven Central's artifact on free loopback ports (streams/apache_kafka)."""
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer(f"apache/kafka:{KAFKA_VERSION}") as kafka:
            yield kafka.get_bootstrap_server()
        return
    with ApacheKafka(workdir=tmp_path / "kafka") as kafka:
        yield kafka.bootstrap


@pytest.fixture
def ledger_url(postgres_url):
    """A fresh PostgreSQL database per test, on the session's server."""
    with fresh_database(postgres_url, prefix="subsidy_stream") as url:
        yield url
