"""Shared fixtures: a real PostgreSQL for the session (a container where a Docker engine answers,
an admin URL from $SUBSIDY_TEST_PG_ADMIN_URL, else a private cluster of the installed PostgreSQL
on a free loopback port), and a fresh database per test where asked."""

from __future__ import annotations

import os

import pytest

from bench.common import fresh_database
from bench.private_postgres import NOT_INSTALLED, PrivatePostgres, find_bin_dir


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine"
        return False


@pytest.fixture(scope="session")
def postgres_url():
    """URL of an empty PostgreSQL database for this test session (postgresql+psycopg://...)."""
    if os.environ.get("SUBSIDY_TEST_PG_ADMIN_URL"):
        with fresh_database(os.environ["SUBSIDY_TEST_PG_ADMIN_URL"], prefix="subsidy_test") as url:
            yield url
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="psycopg") as container:
            yield container.get_connection_url()
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.fail(NOT_INSTALLED, pytrace=False)
    server = PrivatePostgres(bin_dir).init()
    try:
        server.start()
        with fresh_database(server.url, prefix="subsidy_test") as url:
            yield url
    finally:
        server.remove()
