"""A 3-broker Apache Kafka cluster under the pipeline: the broker leading most of the claims and
state changelog partitions is killed with SIGKILL mid-run, and later the one coordinating the
workers' consumer group (leading its ``__consumer_offsets`` partition). Topics are replicated
3 times with ``min.insync.replicas`` 2 and every record is produced with acks=all, so nothing
acknowledged is lost: the ledger equals the replay to the fen, no instruction twice."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from pipeline_support import alive_check, assert_ledger_equals_replay, wait_for_progress
from sinks.ledger import Ledger
from streams.apache_kafka import ApacheKafka
from streams.local import LocalPipeline
from streams.tools.publish import publish_file
from streams.tools.verify import accounted, expected_from_file, wait_until_accounted
from streams.topics import CLAIMS_TOPIC, changelog_topic
from subsidy.generate import generate_file

pytestmark = pytest.mark.integration

APP_ID = "subsidy-cluster"


def group_partition(group: str, partitions: int) -> int:
    """The ``__consumer_offsets`` partition of a group: Kafka's abs(String.hashCode) mod partitions."""
    code, units = 0, group.encode("utf-16-be")  # Java hashes UTF-16 code units
    for i in range(0, len(units), 2):
        code = (31 * code + int.from_bytes(units[i:i + 2], "big")) & 0xFFFFFFFF
    return (code & 0x7FFFFFFF) % partitions


def test_group_partition_is_javas_string_hash():
    # String.hashCode() in jshell (Java 17): "subsidy-pipeline" -1017863548, "成都" 815341
    assert group_partition("", 50) == 0
    assert group_partition("subsidy-pipeline", 50) == (-1017863548 & 0x7FFFFFFF) % 50
    assert group_partition("成都", 2**31 - 1) == 815341


def leaders(bootstrap: str, *topics: str) -> dict[tuple[str, int], int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="cluster-test")
    try:
        return {(t["name"], p["partition_index"]): p["leader_id"] for t in admin.describe_topics(list(topics)) for p in t["partitions"]}
    finally:
        admin.close()


def test_leaders_killed_mid_run_on_three_brokers(ledger_url, tmp_path):
    path = tmp_path / "events.jsonl"
    generate_file(path, 2026, seed=31, enterprises=200, events=5000)
    expected = expected_from_file(str(path))
    total = len(expected.decision_ids) + expected.rejections
    with ApacheKafka(nodes=3, workdir=tmp_path / "kafka") as kafka, \
            LocalPipeline(workers=2, ledger_url=ledger_url, bootstrap=kafka.bootstrap, kafka="apache", workdir=tmp_path / "run",
                          app_id=APP_ID) as p:
        assert publish_file(str(path), kafka.bootstrap) == expected.inputs
        check = alive_check(p)
        with Ledger.open(ledger_url) as ledger:
            wait_for_progress(ledger, expected, int(total * 0.2), timeout=180, check=check)
            state = leaders(kafka.bootstrap, CLAIMS_TOPIC, changelog_topic(APP_ID))
            victim = Counter(state.values()).most_common(1)[0][0]
            kafka.kill(victim)
            done = wait_for_progress(ledger, expected, int(total * 0.5), timeout=180, check=check)
            assert done < total, "the run finished before the second kill"
            kafka.start_node(victim)
            offsets = leaders(kafka.bootstrap, "__consumer_offsets")
            coordinator = offsets[("__consumer_offsets", group_partition(APP_ID, len(offsets)))]
            kafka.kill(coordinator)
            time.sleep(5.0)
            kafka.start_node(coordinator)
            assert wait_until_accounted(ledger, expected, timeout=240, check=check), accounted(ledger, expected)
            assert_ledger_equals_replay(ledger, expected)
    print(f"\nkilled broker {victim} (leading {Counter(state.values())[victim]} of {len(state)} claims and changelog "
          f"partitions), then broker {coordinator} (the group's coordinator)")
