"""Topics as code on Apache Kafka 4.1.1, the production broker (streams/apache_kafka): the settings
the app creates topics with, a worker refusing topics that could lose state, ``subsidy topics``,
records bounded whatever the size of an input, and replication on a 3-node cluster.

One broker for the module whose default retention is an hour, so a topic created without our
settings visibly inherits a finite one. The contract fixes most topic names, so tests that write
settings use topics of their own app id (its state changelog) and leave the shared ones as made.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from schemas.export import load_example
from streams.config import StreamConfig
from streams.loopback import free_port
from streams.own_records import PROGRESS_KEY
from streams.stage_outputs import MAX_RECORD_BYTES
from streams.topics import (
    CHECKED_SETTINGS,
    CLAIMS_TOPIC,
    DECISIONS_TOPIC,
    REJECTIONS_TOPIC,
    TopicAdmin,
    changelog_topic,
    ensure_topics,
    inspect_topics,
    topic_specs,
)
from streams.worker import CONFIG_EXIT, prepare
from subsidy.cli import main

pytestmark = pytest.mark.integration

HOUR_MS = "3600000"


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    from streams.apache_kafka import ApacheKafka

    with ApacheKafka(nodes=1, workdir=tmp_path_factory.mktemp("kafka"), properties={"log.retention.ms": HOUR_MS}) as kafka:
        yield kafka


def config_of(kafka, tmp_path, app_id: str, **changes) -> StreamConfig:
    return StreamConfig(broker=f"kafka://{kafka.bootstrap}", ledger_url=f"sqlite:///{tmp_path}/ledger.sqlite", app_id=app_id, **changes)


def create_bare(bootstrap: str, name: str, partitions: int = 4, replication: int = 1, **configs: str) -> None:
    """A topic as Faust or an operator would create it: the broker's defaults but for ``configs``."""
    with TopicAdmin(bootstrap) as admin:
        admin.client.create_topics({name: {"num_partitions": partitions, "replication_factor": replication, "configs": configs}})


def alter(bootstrap: str, name: str, **configs: str) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    with TopicAdmin(bootstrap) as admin:
        admin.client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, {k.replace("_", "."): v for k, v in configs.items()})])


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("subsidy: error: ")]


# -- (a) what the app creates ----------------------------------------------------------------


def test_a_worker_creates_every_topic_with_its_settings_not_the_brokers(kafka, tmp_path):
    prepare(config_of(kafka, tmp_path, "made-by-a-worker"))
    specs = topic_specs("made-by-a-worker", 4, replication=1)
    with TopicAdmin(kafka.bootstrap) as admin:
        found = admin.states([spec.name for spec in specs])
    for spec in specs:
        state = found[spec.name]
        assert (state.partitions, state.replication) == (spec.partitions, 1), spec.name
        assert {k: state.settings[k] for k in CHECKED_SETTINGS} == {k: spec.settings[k] for k in CHECKED_SETTINGS}, spec.name
    assert found[changelog_topic("made-by-a-worker")].settings["retention.ms"] == "-1"  # not the broker's hour


# -- (b) a worker refuses topics that could lose state -----------------------------------------


def test_a_worker_refuses_a_changelog_with_finite_retention(kafka, tmp_path, monkeypatch, capsys):
    changelog = changelog_topic("finite")
    create_bare(kafka.bootstrap, changelog)  # as Faust made it before topics were code: the broker's hour
    monkeypatch.setenv("SUBSIDY_APP_ID", "finite")
    assert main(["worker", "--broker", kafka.bootstrap, "--ledger", f"sqlite:///{tmp_path}/ledger.sqlite"]) == CONFIG_EXIT
    [line] = error_lines(capsys)
    assert f"topic {changelog}: retention.ms={HOUR_MS} where -1 is wanted" in line
    assert f"--entity-name {changelog} --add-config retention.ms=-1" in line


def test_a_worker_refuses_compaction_where_delete_is_needed_even_without_creating(kafka, tmp_path, monkeypatch, capsys):
    changelog = changelog_topic("compacted")
    ensure_topics(kafka.bootstrap, topic_specs("compacted", 4))
    alter(kafka.bootstrap, changelog, cleanup_policy="compact")
    monkeypatch.setenv("SUBSIDY_APP_ID", "compacted")
    args = ["worker", "--broker", kafka.bootstrap, "--no-create-topics", "--ledger", f"sqlite:///{tmp_path}/ledger.sqlite"]
    assert main(args) == CONFIG_EXIT
    [line] = error_lines(capsys)
    assert f"topic {changelog}: cleanup.policy=compact where delete is wanted" in line


def test_a_worker_refuses_topics_with_another_partition_count(kafka, tmp_path, monkeypatch, capsys):
    ensure_topics(kafka.bootstrap, topic_specs("four", 4))  # the contract's topics, with 4 partitions
    monkeypatch.setenv("SUBSIDY_APP_ID", "two-partitions")
    args = ["worker", "--broker", kafka.bootstrap, "--partitions", "2", "--ledger", f"sqlite:///{tmp_path}/ledger.sqlite"]
    assert main(args) == CONFIG_EXIT
    [line] = error_lines(capsys)
    assert "do not fit this worker" in line and "the app expects 2 partitions, the broker has 4" in line


# -- (c) subsidy topics check | create ---------------------------------------------------------


def topics_command(capsys, *args: str) -> tuple[int, str]:
    code = main(["topics", *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and not captured.err, captured.err
    return code, captured.out


def test_topics_check_and_create_for_operators(kafka, capsys):
    changelog = changelog_topic("operators")
    ensure_topics(kafka.bootstrap, topic_specs("other", 4))  # the shared topics, as wanted
    broker = ["--broker", kafka.bootstrap, "--app-id", "operators"]

    code, out = topics_command(capsys, "check", *broker)
    assert code == 1
    assert f"topic {changelog}: does not exist; fix: subsidy topics create --broker {kafka.bootstrap} --app-id operators" in out
    assert [line.split()[-1] for line in out.splitlines() if line.startswith(changelog)] == ["missing"]

    code, out = topics_command(capsys, "create", *broker)
    assert code == 0, out
    assert f"created {changelog}" in out and out.rstrip().endswith("all 15 topics as the pipeline wants them")
    row = next(line.split() for line in out.splitlines() if line.startswith(changelog))
    assert row == [changelog, "state", "4", "1", "1", "delete", "-1", "-1", "1048588", "false", "ok"]

    code, out = topics_command(capsys, "check", "--json", *broker)
    topics = json.loads(out)
    assert code == 0 and len(topics) == 15 and all(t["exists"] and not t["problems"] for t in topics)

    alter(kafka.bootstrap, changelog, cleanup_policy="compact", retention_ms="86400000")
    code, out = topics_command(capsys, "check", *broker)
    assert code == 1 and "2 problem(s), 2 of which stop a worker:" in out
    assert (f"  STOPS A WORKER topic {changelog}: cleanup.policy=compact where delete is wanted: compaction keeps a claim's "
            f"last record only, and a restore then applies stale caps (streams/state.py); fix: kafka-configs.sh "
            f"--bootstrap-server {kafka.bootstrap} --alter --entity-type topics --entity-name {changelog} "
            "--add-config cleanup.policy=delete") in out.splitlines()
    code, out = topics_command(capsys, "check", "--json", *broker)
    [row] = [t for t in json.loads(out) if t["topic"] == changelog]
    assert code == 1 and {p["setting"]: (p["found"], p["wanted"], p["stops_worker"]) for p in row["problems"]} == {
        "cleanup.policy": ("compact", "delete", True), "retention.ms": ("86400000", "-1", True)}


def test_topics_on_a_broker_nobody_answers_at(monkeypatch, capsys):
    import streams.topics

    monkeypatch.setattr(streams.topics, "BROKER_TIMEOUT_SECONDS", 2.0)
    broker = f"127.0.0.1:{free_port()}"
    assert main(["topics", "check", "--broker", broker]) == 2
    [line] = error_lines(capsys)
    assert f"cannot reach the broker at {broker}" in line


# -- (d) a worker's records stay bounded, however large an input ---------------------------------


def test_inputs_of_1_mib_less_one_byte_make_bounded_claims_and_rejections_that_name_the_whole_input(kafka, tmp_path):
    from kafka import KafkaConsumer, KafkaProducer

    config = config_of(kafka, tmp_path, "big-inputs", datadir=str(tmp_path / "data"), web_port=free_port())
    purchase = load_example("compute-purchases")
    key = purchase["beneficiary"]["uscc"].encode()
    def big(**fields) -> bytes:
        body = json.dumps({**purchase, **fields}).encode()
        return body + b" " * ((1 << 20) - 1 - len(body))  # JSON allows it: the input is as valid as without it

    inputs = {
        "big-float": big(event_id="big-float", amount=12.5),                                     # intake rejects it
        "big-1": big(event_id="big-1", amount="1000.00"),                                        # granted
        "big-1-r": big(event_id="big-1-r", refund_of="big-1", amount="5000.00"),                 # decide rejects it
    }
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", max_request_size=2 << 20)
    for raw in inputs.values():
        producer.send("compute-purchases", key=key, value=raw)
    producer.flush()
    producer.close()
    assert {len(raw) for raw in inputs.values()} == {(1 << 20) - 1}

    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "streams.worker"], env={**os.environ, **config.to_env()},
                                  stdout=log, stderr=subprocess.STDOUT)
    consumer = KafkaConsumer(REJECTIONS_TOPIC, DECISIONS_TOPIC, CLAIMS_TOPIC, bootstrap_servers=kafka.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=1000)
    rejections, decisions, claims = {}, {}, {}
    try:
        deadline = time.monotonic() + 180
        while len(rejections) < 2 or "big-1" not in decisions:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            for record in consumer:
                size = len(record.value) + len(record.key or b"")
                assert size <= MAX_RECORD_BYTES, (record.topic, size)
                body = json.loads(record.value)
                if record.topic == REJECTIONS_TOPIC:
                    rejections[json.loads(base64.b64decode(body["original"]))["event_id"]] = body
                elif record.topic == DECISIONS_TOPIC:
                    decisions[body["event_id"]] = body
                elif record.key != PROGRESS_KEY:  # intake's progress records share the claims topic
                    claims[body["claim"]["event_id"]] = (size, body["origin"])
    finally:
        consumer.close()
        worker.terminate()
        worker.wait(30)
    assert rejections["big-float"]["code"] == "invalid-field" and rejections["big-1-r"]["code"] == "refund-exceeds-original"
    for event_id, rejection in rejections.items():
        raw = inputs[event_id]
        assert (rejection["original_length"], rejection["original_sha256"], rejection["original_truncated"]) == (
            len(raw), hashlib.sha256(raw).hexdigest(), True)
        assert raw.startswith(base64.b64decode(rejection["original"]))
    assert decisions["big-1"]["outcome"] == "granted"
    for event_id in ("big-1", "big-1-r"):
        size, origin = claims[event_id]
        assert size < 100_000 and origin["length"] == len(inputs[event_id])


# -- (e) three brokers ------------------------------------------------------------------------


def test_a_three_node_cluster_gets_three_replicas_and_two_acknowledgements(tmp_path):
    from streams.apache_kafka import ApacheKafka

    with ApacheKafka(nodes=3, workdir=tmp_path / "kafka") as cluster:
        create_bare(cluster.bootstrap, changelog_topic("three"), replication=1, **{"retention.ms": "-1"})
        report = inspect_topics(cluster.bootstrap, "three", 4, create_missing=True)
        assert report.brokers == 3
        for spec in report.specs:
            if spec.name == changelog_topic("three"):
                continue
            state = report.found[spec.name]
            assert (state.replication, state.settings["min.insync.replicas"]) == (3, "2"), spec.name
            assert report.problems_for(spec.name) == []
        # a topic made with one copy on three brokers: a broker lost loses its records
        assert {p.setting for p in report.problems if p.stops_worker} == {"replication.factor", "min.insync.replicas"}
