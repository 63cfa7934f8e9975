"""Poison records on our own topics, on Apache Kafka (streams/apache_kafka): a record of
``subsidy-claims`` or of the state changelog that the pipeline did not write is skipped and
written to ``subsidy-dead-letters`` with where it came from; the worker never stops on it, and
every valid input is decided as the pure replay decides it (streams/own_records.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
import urllib.request
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner

from pipeline_support import assert_ledger_equals_replay, wait_for_progress
from rules.intake import intake
from rules.policy import load_policy
from sinks.ledger import Ledger
from streams.local import LocalPipeline
from streams.own_records import DEAD_LETTER_BYTES, claim_record
from streams.tools.publish import publish_file
from streams.tools.verify import accounted, expected_from_file, state_differs_from_changelog, wait_until_accounted
from streams.topics import CLAIMS_TOPIC, DEAD_LETTERS_TOPIC, changelog_topic
from subsidy.generate import generate_file

pytestmark = pytest.mark.integration

APP_ID = "subsidy-test"
PARTITIONS = 4
CHANGELOG = changelog_topic(APP_ID)
EXAMPLE_PURCHASE = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "compute-purchases.json"


@pytest.fixture
def apache_kafka(tmp_path):
    """Apache Kafka 4.1.1, the production broker, one node of its own for this test."""
    from streams.apache_kafka import ApacheKafka

    with ApacheKafka(nodes=1, workdir=tmp_path / "kafka") as kafka:
        yield kafka.bootstrap


class MemoryStatePipeline(LocalPipeline):
    """Workers that keep the engine's state in memory, rebuilt from the whole changelog at each start."""

    def config(self):
        return super().config().with_(state_store="memory")


def _events(tmp_path: Path, events: int, seed: int) -> list[str]:
    path = tmp_path / f"events-{seed}.jsonl"
    generate_file(path, 2026, seed=seed, enterprises=150, events=events)
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _file(tmp_path: Path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _never_stopped(p: LocalPipeline):
    def check() -> None:
        dead = p.dead_workers()
        assert not dead, f"worker {dead[0].index} exited with {dead[0].proc.returncode}:\n{p.log_tail(dead[0])}"

    return check


def _produce(bootstrap: str, records: list[tuple[str, int | None, bytes | None, bytes | None]]) -> list[tuple[str, int, int, bytes | None, bytes | None]]:
    """Write records as a client that is not ours; (topic, partition, offset, key, value) of each."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 * 1024 * 1024)
    try:
        written = []
        for topic, partition, key, value in records:
            metadata = producer.send(topic, key=key, value=value, partition=partition).get(timeout=30)
            written.append((topic, metadata.partition, metadata.offset, key, value))
        return written
    finally:
        producer.close()


def _dead_letters(bootstrap: str, expected: int, timeout: float = 60.0) -> list[tuple[bytes | None, dict]]:
    """(Kafka key, record) of every dead letter, once there are ``expected`` of them."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(DEAD_LETTERS_TOPIC, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    records: list[tuple[bytes | None, dict]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(records) < expected:
            for batch in consumer.poll(timeout_ms=500).values():
                records += [(message.key, json.loads(message.value)) for message in batch]
        time.sleep(2)  # and nothing more comes
        for batch in consumer.poll(timeout_ms=1000).values():
            records += [(message.key, json.loads(message.value)) for message in batch]
    finally:
        consumer.close()
    return records


def _assert_dead_lettered(dead_letters: list[tuple[bytes | None, dict]], poison: list[tuple[str, int, int, bytes | None, bytes | None]]) -> None:
    """One dead letter per poison record, naming where it was and what it held."""
    by_place = {(record["topic"], record["partition"], record["offset"]): (key, record) for key, record in dead_letters}
    assert len(by_place) == len(dead_letters) == len(poison), [r for _, r in dead_letters]
    for topic, partition, offset, key, value in poison:
        kafka_key, record = by_place[topic, partition, offset]
        assert kafka_key == key  # keyed like its source
        assert record["key"] == (None if key is None else base64.b64encode(key).decode())
        assert base64.b64decode(record["value"]) == value[:DEAD_LETTER_BYTES]
        assert record["value_length"] == len(value) and record["value_sha256"] == hashlib.sha256(value).hexdigest()
        assert record["timestamp"] and record["dead_lettered_at"]
        assert record["reason"] and "\n" not in record["reason"] and "find the client that wrote this record" in record["reason"]


def _dead_letter_count(p: LocalPipeline, topic: str) -> float:
    from console.promtext import parse

    page = urllib.request.urlopen(f"http://127.0.0.1:{p.workers[0].web_port}/metrics", timeout=5).read().decode()
    return sum(s.value for s in parse(page)["subsidy_dead_letters_total"].samples if s.labels.get("topic") == topic)


def _committed(bootstrap: str, topic: str, partition: int) -> int | None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=APP_ID, enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, partition))
    finally:
        consumer.close()


def _example_claim() -> tuple[bytes, bytes]:
    """(key, value) of a claim exactly as intake writes it, of an input that is not in the events."""
    raw = EXAMPLE_PURCHASE.read_bytes()
    [claim] = intake("compute-purchases", raw, load_policy())
    origin = {"topic": "compute-purchases", "partition": 0, "offset": 999, "key": None, "raw": base64.b64encode(raw).decode()}
    return claim.clause_id.encode(), claim_record(claim, origin, None)


def _another_partition(key: bytes) -> int:
    """A partition intake never puts a claim with this key on (its clause's caps live in another's state)."""
    return (DefaultPartitioner()(key, list(range(PARTITIONS)), []) + 1) % PARTITIONS


def test_poison_claims_are_dead_lettered_and_every_valid_input_is_decided(apache_kafka, ledger_url, tmp_path):
    lines = _events(tmp_path, 1000, seed=21)
    expected = expected_from_file(_file(tmp_path, "all.jsonl", lines))
    p = LocalPipeline(workers=1, partitions=PARTITIONS, ledger_url=ledger_url, bootstrap=apache_kafka,
                      workdir=tmp_path / "run", app_id=APP_ID)
    try:
        p.start()
        p.wait_ready()
        never_stopped = _never_stopped(p)
        publish_file(_file(tmp_path, "first.jsonl", lines[: len(lines) // 2]), apache_kafka)
        with Ledger.open(p.ledger_url) as ledger:
            wait_for_progress(ledger, expected, 100, check=never_stopped)  # claims before the poison, in its partition too
            claim_key, claim_value = _example_claim()
            with_a_field_claim_lacks = json.loads(claim_value)
            with_a_field_claim_lacks["claim"]["bonus"] = "100.00"
            poison = _produce(apache_kafka, [
                (CLAIMS_TOPIC, None, claim_key, b"not a claim"),  # the kcat line
                (CLAIMS_TOPIC, None, claim_key, json.dumps({"claim": {"event_id": "forged"}, "origin": {}}).encode()),
                (CLAIMS_TOPIC, None, claim_key, random.Random(21).randbytes(900_000)),
                (CLAIMS_TOPIC, None, claim_key, json.dumps(with_a_field_claim_lacks).encode()),
                (CLAIMS_TOPIC, _another_partition(claim_key), claim_key, claim_value),
            ])
            publish_file(_file(tmp_path, "second.jsonl", lines[len(lines) // 2:]), apache_kafka)
            assert wait_until_accounted(ledger, expected, timeout=240, check=never_stopped), accounted(ledger, expected)
            assert_ledger_equals_replay(ledger, expected)

        _assert_dead_lettered(_dead_letters(apache_kafka, len(poison)), poison)
        assert _dead_letter_count(p, CLAIMS_TOPIC) == len(poison)
        log = p.workers[0].log_path.read_text(errors="replace")
        assert log.count(f"cannot be read; written to {DEAD_LETTERS_TOPIC}") == len(poison)  # once each
        # their offsets are committed like any other record's
        for topic, partition, offset, _, _ in poison:
            deadline = time.monotonic() + 30
            while (_committed(apache_kafka, topic, partition) or 0) <= offset and time.monotonic() < deadline:
                time.sleep(1)
            assert (_committed(apache_kafka, topic, partition) or 0) > offset, (partition, offset)
        never_stopped()
    finally:
        p.stop()


@pytest.mark.parametrize("pipeline_class", [LocalPipeline, MemoryStatePipeline], ids=["rocksdb", "memory"])
def test_a_poison_record_in_the_state_changelog_is_skipped_by_a_restore_and_dead_lettered(apache_kafka, ledger_url, tmp_path, pipeline_class):
    lines = _events(tmp_path, 1200, seed=22)
    first = lines[: len(lines) // 2]
    p = pipeline_class(workers=1, partitions=PARTITIONS, ledger_url=ledger_url, bootstrap=apache_kafka,
                       workdir=tmp_path / "run", app_id=APP_ID)
    try:
        p.start()
        p.wait_ready()
        publish_file(_file(tmp_path, "first.jsonl", first), apache_kafka)
        with Ledger.open(p.ledger_url) as ledger:
            expected_first = expected_from_file(_file(tmp_path, "expected-first.jsonl", first))
            assert wait_until_accounted(ledger, expected_first, timeout=180, check=_never_stopped(p)), accounted(ledger, expected_first)
        p.stop_worker(p.workers[0])

        poison = _produce(apache_kafka, [
            (CHANGELOG, 0, b'["claim", "compute-voucher", "scc-billing", "forged"]', b"not a state record"),
            (CHANGELOG, 1, None, b'{"w": {"[\\"cap\\", \\"compute-voucher\\"]": 5}}'),
            (CHANGELOG, 2, b"k", b"[1, 2, 3]"),
            (CHANGELOG, 3, b"k", b'{"w": {}}'),
        ])
        fresh = p.start_worker()  # a new data directory: it restores every partition from the changelog
        p.wait_ready()
        # every first-half input again (each must find its decision in the restored state), then the rest
        publish_file(_file(tmp_path, "again-and-rest.jsonl", lines), apache_kafka)
        expected = expected_from_file(_file(tmp_path, "expected-all.jsonl", first + lines))
        with Ledger.open(p.ledger_url) as ledger:
            assert wait_until_accounted(ledger, expected, timeout=240, check=_never_stopped(p)), accounted(ledger, expected)
            assert_ledger_equals_replay(ledger, expected)  # caps intact: nothing decided twice, no cap charged twice

        _assert_dead_lettered(_dead_letters(apache_kafka, len(poison)), poison)
        assert _dead_letter_count(p, CHANGELOG) == len(poison)
        assert fresh.alive()
        if pipeline_class is LocalPipeline:
            p.stop_worker(fresh)
            assert state_differs_from_changelog(p, apache_kafka) == []
    finally:
        p.stop()
