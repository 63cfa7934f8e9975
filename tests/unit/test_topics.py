"""The topics' specs and what the check says of a topic, without a broker (the broker's side:
tests/integration/test_topics_on_apache_kafka.py)."""

from __future__ import annotations

import pytest

from schemas.inputs import INPUT_TOPICS
from streams.config import StreamConfig
from streams.stage_outputs import MAX_RECORD_BYTES
from streams.topics import (
    CHECKED_SETTINGS,
    CLAIMS_TOPIC,
    STATE,
    TopicsReport,
    TopicState,
    changelog_topic,
    default_replication,
    expected_topics,
    input_partitions_of,
    problems_of,
    topic_specs,
)

BROKER = "kafka-1:9092"
CREATE = f"subsidy topics create --broker {BROKER}"


def spec_of(name: str, replication: int = 1):
    return next(spec for spec in topic_specs("app", 4, replication) if spec.name == name)


def as_wanted(spec) -> TopicState:
    return TopicState(spec.partitions, spec.replication, dict(spec.settings))


def test_every_topic_of_the_app_has_a_spec_with_every_checked_setting():
    specs = topic_specs("app", 4)
    assert [s.name for s in specs] == [*INPUT_TOPICS, "payee-exclusions", "payee-accounts", "payment-status", "payment-voids", CLAIMS_TOPIC, changelog_topic("app"),
                                       "disbursement-instructions", "subsidy-decisions", "subsidy-rejections", "subsidy-dead-letters", "ledger-checkpoints"]
    assert {s.name: s.kind for s in specs if s.kind == STATE} == {CLAIMS_TOPIC: STATE, "app-subsidy-state-changelog": STATE}
    for spec in specs:
        assert set(CHECKED_SETTINGS) <= set(spec.settings), spec.name
        assert spec.settings["cleanup.policy"] == "delete" and spec.settings["retention.ms"] == spec.settings["retention.bytes"] == "-1"
        assert int(spec.settings["max.message.bytes"]) > MAX_RECORD_BYTES
    assert expected_topics("app", 4) == {s.name: s.partitions for s in specs}
    assert expected_topics("app", 4)["award-announcements"] == expected_topics("app", 4)["ledger-checkpoints"] == 1
    # intake reads payee-exclusions, payee-accounts and payment-status, but they make no claim: decide's watermark waits only for the claims' topics
    assert {topic for topic, _ in input_partitions_of(4)} == set(INPUT_TOPICS)


@pytest.mark.parametrize("brokers,replication,min_insync", [(1, 1, "1"), (2, 1, "1"), (3, 3, "2"), (5, 3, "2")])
def test_replication_follows_the_cluster_and_two_copies_acknowledge_each_write(brokers, replication, min_insync):
    assert default_replication(brokers) == replication
    assert {s.settings["min.insync.replicas"] for s in topic_specs("app", 4, replication)} == {min_insync}


def test_replication_comes_from_the_environment():
    assert StreamConfig.from_env({"SUBSIDY_REPLICATION": "3"}).replication == 3
    assert StreamConfig.from_env({}).replication is None
    assert StreamConfig.from_env({"SUBSIDY_REPLICATION": "2"}).to_env()["SUBSIDY_REPLICATION"] == "2"
    with pytest.raises(ValueError, match="SUBSIDY_REPLICATION"):
        StreamConfig.from_env({"SUBSIDY_REPLICATION": "0"})
    with pytest.raises(ValueError, match="SUBSIDY_REPLICATION"):
        StreamConfig.from_env({"SUBSIDY_REPLICATION": "three"})


def test_a_topic_as_wanted_has_no_problem():
    for spec in topic_specs("app", 4, 3):
        assert problems_of(spec, as_wanted(spec), BROKER, CREATE) == []


@pytest.mark.parametrize("topic,setting,found,stops", [
    ("app-subsidy-state-changelog", "retention.ms", "604800000", True),   # the issue: caps rebuilt from a week
    (CLAIMS_TOPIC, "retention.bytes", "1073741824", True),
    ("app-subsidy-state-changelog", "cleanup.policy", "compact", True),     # stale caps on restore
    ("compute-purchases", "cleanup.policy", "compact,delete", True),        # one input per payee kept
    ("subsidy-rejections", "max.message.bytes", str(MAX_RECORD_BYTES), True),  # our largest record refused
    (CLAIMS_TOPIC, "unclean.leader.election.enable", "true", True),
    ("compute-purchases", "retention.ms", "604800000", False),              # an auditor's loss, not state's
    ("subsidy-decisions", "retention.ms", "604800000", False),
    ("model-invoices", "max.message.bytes", "500000", False),               # upstream limited, not us
    ("subsidy-decisions", "unclean.leader.election.enable", "true", False),
])
def test_a_wrong_setting_is_named_with_its_fix(topic, setting, found, stops):
    spec = spec_of(topic)
    state = as_wanted(spec)
    state.settings[setting] = found
    [problem] = problems_of(spec, state, BROKER, CREATE)
    assert (problem.topic, problem.setting, problem.found, problem.stops_worker) == (topic, setting, found, stops)
    assert problem.fix == (f"kafka-configs.sh --bootstrap-server {BROKER} --alter --entity-type topics --entity-name {topic} "
                           f"--add-config {setting}={spec.settings[setting]}")
    line = problem.line()
    assert "\n" not in line and line.startswith(f"topic {topic}: {setting}={found}")


def test_a_larger_max_message_bytes_than_ours_is_fine():
    spec = spec_of(CLAIMS_TOPIC)
    state = as_wanted(spec)
    state.settings["max.message.bytes"] = str(8 << 20)
    assert problems_of(spec, state, BROKER, CREATE) == []


def test_replication_below_what_was_asked_and_min_insync_replicas_stop_a_worker():
    spec = spec_of(CLAIMS_TOPIC, replication=3)
    fewer, one_copy_acknowledges = problems_of(spec, TopicState(4, 1, {**spec.settings, "min.insync.replicas": "1"}), BROKER, CREATE)
    assert fewer.setting == "replication.factor" and fewer.stops_worker and "SUBSIDY_REPLICATION=1" in fewer.fix
    assert one_copy_acknowledges.setting == "min.insync.replicas"
    [one_ack] = problems_of(spec, TopicState(4, 3, {**spec.settings, "min.insync.replicas": "1"}), BROKER, CREATE)
    assert one_ack.setting == "min.insync.replicas" and one_ack.stops_worker
    [no_writes] = problems_of(spec, TopicState(4, 3, {**spec.settings, "min.insync.replicas": "4"}), BROKER, CREATE)
    assert "refuses every write" in no_writes.what and no_writes.stops_worker


def test_a_missing_topic_and_another_partition_count():
    spec = spec_of("compute-purchases")
    [missing] = problems_of(spec, None, BROKER, CREATE)
    assert (missing.setting, missing.fix, missing.stops_worker) == ("exists", CREATE, True)
    [partitions] = problems_of(spec, TopicState(2, 1, dict(spec.settings)), BROKER, CREATE)
    assert "the app expects 4 partitions, the broker has 2" in partitions.what and partitions.stops_worker


def test_a_worker_refuses_with_one_line_on_the_first_problem_that_stops_it():
    specs = topic_specs("app", 4)
    found = {spec.name: as_wanted(spec) for spec in specs}
    found["subsidy-decisions"].settings["retention.ms"] = "86400000"
    found[CLAIMS_TOPIC].settings["retention.ms"] = "86400000"
    found["app-subsidy-state-changelog"].settings["cleanup.policy"] = "compact"
    report = TopicsReport(BROKER, 1, specs, found, [p for s in specs for p in problems_of(s, found[s.name], BROKER, CREATE)])
    assert report.refusal() == (f"topic {CLAIMS_TOPIC}: retention.ms=86400000 where -1 is wanted: older records are deleted, and the "
                                "engine's state loses claims (caps restored without them and paid past, or claims never decided); "
                                f"fix: kafka-configs.sh --bootstrap-server {BROKER} --alter --entity-type topics --entity-name "
                                f"{CLAIMS_TOPIC} --add-config retention.ms=-1 (and 1 more: subsidy topics check --broker {BROKER})")
    rows = {row["topic"]: row for row in report.to_json()}
    assert [p["setting"] for p in rows["subsidy-decisions"]["problems"]] == ["retention.ms"]
    assert rows["subsidy-decisions"]["problems"][0]["stops_worker"] is False
    assert rows["compute-purchases"]["problems"] == [] and rows["compute-purchases"]["wanted"]["partitions"] == 4
