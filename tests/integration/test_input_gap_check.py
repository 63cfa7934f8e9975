"""streams/input_gap_check.py on a real broker: transaction markers hold no record; records do."""

from __future__ import annotations

import asyncio

import pytest

from streams.input_gap_check import GapCheckFailed, records_between
from streams.tansu.broker import create_topics

TOPIC = "model-invoices"


def test_markers_hold_no_record_and_records_are_found(kafka_bootstrap):
    from kafka import KafkaProducer

    create_topics(kafka_bootstrap, {TOPIC: 1})
    upstream = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id="billing-1")
    upstream.init_transactions()
    for size in (3, 2):  # offsets 0-2 and 4-5, each transaction's commit marker after it (3, 6)
        upstream.begin_transaction()
        for i in range(size):
            upstream.send(TOPIC, b"invoice-%d" % i, partition=0)
        upstream.commit_transaction()
    upstream.close()
    plain = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    plain.send(TOPIC, b"invoice-plain", partition=0)  # offset 7
    plain.flush()
    plain.close()

    def check(first: int, after: int, timeout: float = 10.0) -> list[int]:
        return asyncio.run(records_between(kafka_bootstrap, TOPIC, 0, first, after, timeout=timeout))

    assert check(3, 4) == [] and check(6, 7) == []  # what Faust takes a gap for, rightly
    assert check(1, 4) == [1, 2]  # what it must not
    assert check(0, 7) == [0, 1, 2, 4, 5]
    with pytest.raises(GapCheckFailed, match=r"could not read model-invoices\[0\] @3..@49 back from"):
        check(3, 50, timeout=2)  # the partition never reaches @50
