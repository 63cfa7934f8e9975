"""StageOutputs against a stand-in for aiokafka's producer: record batches per partition, in
order, each record's offset told once the broker acknowledged it, a failure raised. With the real
producer and broker: tests/integration/test_stage_outputs_on_a_broker.py, and every pipeline run."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streams.stage_outputs import StageOutputs


class FakeBatch:
    def __init__(self, capacity: int):
        self.capacity, self.records = capacity, []

    def append(self, *, key, value, timestamp):
        if len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()


class FakeProducer:
    """Partitions by the key's first byte; the broker gives each partition consecutive offsets."""

    def __init__(self, batch_capacity: int = 100, fail_topic: str | None = None):
        self.batch_capacity, self.fail_topic = batch_capacity, fail_topic
        self.sent: list[tuple[str, int, list]] = []
        self.metadata_waits: list[str] = []
        self.next_offset: dict[tuple[str, int], int] = {}
        self.client = SimpleNamespace(_wait_on_metadata=self._wait_on_metadata)

    async def _wait_on_metadata(self, topic):
        self.metadata_waits.append(topic)

    def _partition(self, topic, partition, key, value, serialized_key, serialized_value):
        return serialized_key[0] % 4

    def create_batch(self):
        return FakeBatch(self.batch_capacity)

    async def send_batch(self, batch, topic, *, partition):
        self.sent.append((topic, partition, batch.records))
        delivery = asyncio.get_running_loop().create_future()
        if topic == self.fail_topic:
            delivery.set_exception(TimeoutError("batch expired"))
        else:
            base = self.next_offset.get((topic, partition), 0)
            self.next_offset[topic, partition] = base + len(batch.records)
            delivery.set_result(SimpleNamespace(topic_partition=(topic, partition), offset=base))
        return delivery


def test_records_go_in_one_batch_per_partition_in_the_order_they_were_put():
    outputs = StageOutputs()
    for i in range(6):
        outputs.put("decisions", bytes([i]), b"d%d" % i)  # keys 0..5: partitions 0,1,2,3,0,1
    outputs.put("changelog", b"k", b"c", partition=2)
    producer = FakeProducer()
    asyncio.run(outputs.deliver(producer))
    assert sorted(producer.sent) == sorted([
        ("decisions", 0, [(b"\x00", b"d0"), (b"\x04", b"d4")]),
        ("decisions", 1, [(b"\x01", b"d1"), (b"\x05", b"d5")]),
        ("decisions", 2, [(b"\x02", b"d2")]),
        ("decisions", 3, [(b"\x03", b"d3")]),
        ("changelog", 2, [(b"k", b"c")]),
    ])
    assert producer.metadata_waits == ["decisions"]  # an explicit partition needs no partitioner
    assert len(outputs) == 0


def test_a_full_batch_is_followed_by_another_and_each_record_learns_its_offset():
    outputs = StageOutputs()
    told = []
    for i in range(5):
        outputs.put("changelog", b"k%d" % i, b"v", partition=1, on_delivered=lambda tp, offset, i=i: told.append((i, tp, offset)))
    producer = FakeProducer(batch_capacity=2)
    producer.next_offset["changelog", 1] = 40
    asyncio.run(outputs.deliver(producer))
    assert [len(records) for _, _, records in producer.sent] == [2, 2, 1]
    assert told == [(i, ("changelog", 1), 40 + i) for i in range(5)]


def test_a_record_the_broker_did_not_take_raises_and_its_callback_is_not_told():
    outputs = StageOutputs()
    told = []
    outputs.put("changelog", b"k", b"v", partition=0, on_delivered=lambda tp, offset: told.append(offset))
    with pytest.raises(TimeoutError, match="batch expired"):
        asyncio.run(outputs.deliver(FakeProducer(fail_topic="changelog")))
    assert told == []
