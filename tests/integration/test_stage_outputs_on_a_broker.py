"""streams/stage_outputs.py on a real broker: every record lands where its callback says.

RocksDB stores a claim's writes with the offset StageOutputs reports for the claim's changelog
record (the record batch's base offset plus the record's place in it), and a restart reads the
changelog from there; a wrong offset would skip claims or apply them twice."""

from __future__ import annotations

import asyncio

from streams.stage_outputs import StageOutputs
from streams.tansu.broker import create_topics

TOPIC = "stage-outputs"


def test_each_record_is_told_the_partition_and_offset_the_broker_stored_it_at(kafka_bootstrap):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    create_topics(kafka_bootstrap, {TOPIC: 3})
    told: dict[bytes, tuple[int, int]] = {}
    put_order: list[bytes] = []

    def remember(value: bytes):
        return lambda tp, offset: told.__setitem__(value, (tp.partition, offset))

    async def run() -> dict[bytes, tuple[int, int]]:
        # small record batches: each partition's records of one delivery span several batches
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_batch_size=4096)
        await producer.start()
        try:
            for round_ in range(3):
                outputs = StageOutputs()
                for i in range(400):
                    value = b"%d-%03d-" % (round_, i) + b"x" * 60
                    partition = None if i % 2 else i % 3  # keyed (the partitioner's choice) and explicit
                    outputs.put(TOPIC, b"key-%d" % (i % 37), value, partition, remember(value))
                    put_order.append(value)
                await outputs.deliver(producer)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=kafka_bootstrap, group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        stored: dict[bytes, tuple[int, int]] = {}
        try:
            while len(stored) < len(put_order):
                for records in (await consumer.getmany(timeout_ms=2000)).values():
                    stored.update((r.value, (r.partition, r.offset)) for r in records)
        finally:
            await consumer.stop()
        return stored

    stored = asyncio.run(asyncio.wait_for(run(), timeout=60))
    assert len(told) == len(put_order) == 1200
    assert told == stored
    for partition in range(3):  # each partition holds its records in the order they were put
        offsets = [stored[v][1] for v in put_order if stored[v][0] == partition]
        assert offsets == sorted(offsets) and offsets, partition
