"""Fixtures of the pipeline tests (tests/integration/test_pipeline.py)."""

from __future__ import annotations

import pytest

from bench.common import fresh_database
from pipeline_support import docker_answers


@pytest.fixture
def kafka_bootstrap(tmp_path):
    """A real Kafka-protocol broker on a free loopback port, fresh for each test (the
    contract fixes the topic names, so tests cannot share one). Apache Kafka in a container
    where a Docker engine answers, else the local tansu broker."""
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from streams.local_broker import LocalBroker

    with LocalBroker(log_path=tmp_path / "broker.log") as broker:
        yield broker.bootstrap


@pytest.fixture
def ledger_url(postgres_url):
    """A fresh PostgreSQL database per test, on the session's server."""
    with fresh_database(postgres_url, prefix="subsidy_stream") as url:
        yield url
