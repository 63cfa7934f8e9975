"""The benchmarks' broker choice (``--kafka``) and PostgreSQL server choice (``--pg-url``)."""

from __future__ import annotations

import argparse

import pytest

from bench import common
from bench.pipeline_support import kafka_argument, kafka_kinds


@pytest.mark.parametrize("choice, kinds", [
    ("both", ("tansu", "apache")),
    ("tansu", ("tansu",)),
    ("apache", ("apache",)),
    ("apache,tansu", ("apache", "tansu")),
    (" Tansu , APACHE ", ("tansu", "apache")),
])
def test_kafka_choice_names_the_brokers_in_the_order_run(choice, kinds):
    assert kafka_kinds(choice) == kinds


@pytest.mark.parametrize("choice", ["kafka", "", "tansu,tansu", "both,apache", "redpanda,tansu"])
def test_kafka_choice_refuses_an_unknown_or_repeated_broker(choice):
    with pytest.raises(ValueError):
        kafka_kinds(choice)
    with pytest.raises(argparse.ArgumentTypeError):
        kafka_argument(choice)


def test_a_bad_kafka_choice_is_a_usage_error():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kafka", type=kafka_argument, default=kafka_argument("both"))
    assert parser.parse_args([]).kafka == ("tansu", "apache")
    with pytest.raises(SystemExit):
        parser.parse_args(["--kafka", "zookeeper"])


def test_a_given_postgres_url_is_used_as_is_and_nothing_is_started(monkeypatch):
    monkeypatch.setenv(common.PG_URL_ENV, "postgresql+psycopg://env@127.0.0.1:1/postgres")
    with common.postgres_server("postgresql+psycopg://given@127.0.0.1:2/postgres") as url:
        assert url == "postgresql+psycopg://given@127.0.0.1:2/postgres"
    with common.postgres_server(None) as url:
        assert url == "postgresql+psycopg://env@127.0.0.1:1/postgres"


def test_no_postgres_url_and_no_postgres_installed_says_how_to_get_one(monkeypatch):
    monkeypatch.delenv(common.PG_URL_ENV, raising=False)
    monkeypatch.setattr("bench.private_postgres.find_bin_dir", lambda: None)
    with pytest.raises(SystemExit, match="--pg-url"):
        with common.postgres_server(None):
            pass


def _member(*partitions: int) -> dict:
    return {"member_id": "faust-1", "member_assignment": {"assigned_partitions": [{"topic": "subsidy-claims", "partitions": list(partitions)}]}}


@pytest.mark.parametrize("description, members, settled", [
    ({"group_state": "Stable", "members": [_member(0, 1)], "error": None}, 1, True),
    ({"group_state": "Stable", "members": [_member(0, 1), _member(2, 3)]}, 2, True),
    ({"group_state": "Stable", "members": [_member(0, 1)]}, 2, False),  # the second worker not in yet
    ({"group_state": "Stable", "members": [_member(0, 1), _member()]}, 2, False),  # one holds nothing
    ({"group_state": "PreparingRebalance", "members": [_member(0, 1)]}, 1, False),
    ({"group_state": "Stable", "members": [_member(0)], "error": "COORDINATOR_LOAD_IN_PROGRESS"}, 1, False),
    ({}, 1, False),
])
def test_a_group_is_settled_when_stable_with_every_worker_holding_partitions(description, members, settled):
    from bench.pipeline_support import group_settled

    assert group_settled(description, members) is settled
