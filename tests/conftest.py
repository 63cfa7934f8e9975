"""Shared fixtures: a real PostgreSQL (testcontainers if a Docker engine answers, else the local
server at 127.0.0.1:5432 with a fresh database) and a SQLite file."""

from __future__ import annotations

import os

import pytest

from bench.common import fresh_database

LOCAL_PG_ADMIN = os.environ.get("SUBSIDY_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
START_HINT = (
    "PostgreSQL is not reachable: no Docker engine answers and nothing listens on 127.0.0.1:5432. "
    "Start the local server with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
    "(or set SUBSIDY_TEST_PG_ADMIN_URL to an admin URL of another server)"
)


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine"
        return False


def _local_server_answers(admin_url: str) -> bool:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """URL of an empty PostgreSQL database for this test session (postgresql+psycopg://...)."""
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="psycopg") as container:
            yield container.get_connection_url()
        return
    if _local_server_answers(LOCAL_PG_ADMIN):
        with fresh_database(LOCAL_PG_ADMIN, prefix="subsidy_test") as url:
            yield url
        return
    pytest.fail(START_HINT, pytrace=False)
