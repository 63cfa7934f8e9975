"""Probe: does tansu serve a partition's records in offset order while several producers write to it?

Several aiokafka producers (``--producers``, default 2, each its own connection, 5 ms linger,
256 KiB batches, as the workers' stages send) write ~300-byte records to the same four
partitions for ``--seconds``, while one consumer reads along from offset 0 (50 ms fetch wait,
as local workers fetch). Every acknowledged record is remembered by (partition, offset). The
probe reports, per run:

* ``consumer_jumps``: the consumer's next offset moved past records it never got;
* ``responses_past_fetch_offset``: a fetch response whose first record batch starts past the
  offset the consumer asked for, read off the raw response before aiokafka parses it. A Kafka
  broker never does that outside compacted topics: it appends a partition's batches in order
  and serves nothing past its high watermark. Such a response is the broker's doing, not the
  client's;
* ``reread``: each jumped range read again after the producers stopped, and whether it holds
  the records the broker acknowledged there.

Found 2026-12-03 (bench/README.md, "The steady-state claims gap, explained"): with two producers,
jumps of 15–110 records in some runs of ~1 million records, each one a response that started past
the fetch offset, the skipped records there when read again; with one producer, none.

Run: ``python bench/probe_tansu_concurrent_produce.py [--runs 3] [--seconds 60] [--producers 2] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.consumer import fetcher as aiokafka_fetcher  # noqa: E402
from aiokafka.structs import TopicPartition  # noqa: E402

from streams.local_broker import LocalBroker, create_topics  # noqa: E402

TOPIC = "probe"
PARTITIONS = 4
RECORD_BYTES = 300


class ResponseWatch:
    """Reads the first batch's base offset of every partition's raw fetch response.

    aiokafka builds ``MemoryRecords(raw)`` for a partition's response and, right after it in the
    same synchronous block, ``PartitionRecords(tp, records, aborted, fetch_offset, ...)``; the two
    wrappers below meet there. Probe-only: nothing in the pipeline patches aiokafka this way."""

    def __init__(self) -> None:
        self.past_fetch_offset: list[tuple[int, int, int]] = []
        self._first_base: int | None = None

    def install(self) -> None:
        memory_records, partition_records_init = aiokafka_fetcher.MemoryRecords, aiokafka_fetcher.PartitionRecords.__init__
        watch = self

        def memory_records_peeking(raw):
            watch._first_base = struct.unpack(">q", bytes(raw[:8]))[0] if len(raw) >= 8 else None
            return memory_records(raw)

        def partition_records_checked(self, tp, records, aborted, fetch_offset, *args, **kwargs):
            if watch._first_base is not None and watch._first_base > fetch_offset:
                watch.past_fetch_offset.append((tp.partition, fetch_offset, watch._first_base))
            partition_records_init(self, tp, records, aborted, fetch_offset, *args, **kwargs)

        aiokafka_fetcher.MemoryRecords = memory_records_peeking
        aiokafka_fetcher.PartitionRecords.__init__ = partition_records_checked


async def produce(bootstrap: str, producer_id: int, seconds: float, acknowledged: dict) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024, acks="all")
    await producer.start()
    sent = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            pending = []
            for _ in range(random.randint(1, 400)):
                value = f"p{producer_id}-{sent}"
                pending.append((value, await producer.send(TOPIC, value.encode().ljust(RECORD_BYTES, b"."),
                                                           partition=random.randrange(PARTITIONS))))
                sent += 1
            for value, delivery in pending:
                metadata = await delivery
                acknowledged[(metadata.partition, metadata.offset)] = value
            await asyncio.sleep(random.random() * 0.02)
    finally:
        await producer.stop()
    return sent


async def read_along(bootstrap: str, producers_done: asyncio.Event, seen: dict, jumps: list) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, fetch_max_wait_ms=50)
    await consumer.start()
    partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, 0)
    next_offset = dict.fromkeys(range(PARTITIONS), 0)
    empty_polls_after_done = 0
    try:
        while empty_polls_after_done < 10:
            got = await consumer.getmany(timeout_ms=200, max_records=1000)
            for tp, records in got.items():
                for record in records:
                    if record.offset != next_offset[tp.partition]:
                        jumps.append((tp.partition, next_offset[tp.partition], record.offset))
                    next_offset[tp.partition] = record.offset + 1
                    seen[(tp.partition, record.offset)] = record.value.rstrip(b".").decode()
            if producers_done.is_set():
                empty_polls_after_done = 0 if got else empty_polls_after_done + 1
    finally:
        await consumer.stop()


async def reread(bootstrap: str, jumps: list, acknowledged: dict) -> list[dict]:
    if not jumps:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    found = []
    try:
        for partition, expected, got_instead in jumps:
            tp = TopicPartition(TOPIC, partition)
            consumer.assign([tp])
            consumer.seek(tp, expected)
            records = (await consumer.getmany(tp, timeout_ms=2000, max_records=got_instead - expected)).get(tp, [])
            found.append({"partition": partition, "from": expected, "records": len(records),
                          "hold_the_acknowledged_records": all(
                              r.value.rstrip(b".").decode() == acknowledged.get((partition, r.offset)) for r in records)})
    finally:
        await consumer.stop()
    return found


async def one_run(seconds: float, producers: int, watch: ResponseWatch) -> dict:
    watch.past_fetch_offset.clear()
    with LocalBroker() as broker:
        create_topics(broker.bootstrap, {TOPIC: PARTITIONS})
        acknowledged: dict = {}
        seen: dict = {}
        jumps: list = []
        producers_done = asyncio.Event()
        reader = asyncio.create_task(read_along(broker.bootstrap, producers_done, seen, jumps))
        started = time.monotonic()
        sent = await asyncio.gather(*(produce(broker.bootstrap, i, seconds, acknowledged) for i in range(producers)))
        producers_done.set()
        await reader
        elapsed = time.monotonic() - started
        missed = sum(1 for key, value in acknowledged.items() if seen.get(key) != value)
        return {"producers": producers, "records": sum(sent), "seconds": round(elapsed, 1),
                "acknowledged": len(acknowledged), "read": len(seen), "missed_by_the_reader": missed,
                "consumer_jumps": [list(j) for j in jumps],
                "responses_past_fetch_offset": [list(r) for r in watch.past_fetch_offset],
                "reread": await reread(broker.bootstrap, jumps, acknowledged)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    watch = ResponseWatch()
    watch.install()
    runs = []
    for number in range(1, args.runs + 1):
        result = asyncio.run(one_run(args.seconds, args.producers, watch))
        runs.append(result)
        if not args.json:
            print(f"run {number}/{args.runs}: {result['records']:,} records from {args.producers} producers in "
                  f"{result['seconds']} s; consumer jumps {result['consumer_jumps']}; responses past the fetch "
                  f"offset {result['responses_past_fetch_offset']}; reread {result['reread']}", file=sys.stderr, flush=True)
    summary = {"probe": "tansu-concurrent-produce", "runs": runs,
               "runs_with_a_jump": sum(1 for r in runs if r["consumer_jumps"]),
               "records": sum(r["records"] for r in runs)}
    print(json.dumps(summary, indent=2) if args.json else
          f"{summary['runs_with_a_jump']} of {args.runs} runs had the reader skip records ({summary['records']:,} records in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
