"""Probe: does tansu serve a partition's records in offset order while several producers write to it?

Several aiokafka producers (``--producers``, default 2, each its own connection, 5 ms linger,
256 KiB batches, as the workers' stages send) write ~300-byte records to the same four
partitions for ``--seconds``, while one consumer reads along from offset 0 (50 ms fetch wait,
as local workers fetch). Every acknowledged record is remembered by (partition, offset). The
probe reports, per run:

* ``consumer_jumps``: the consumer's next offset moved past records it never got;
* ``holes_in_fetch_responses``: offsets a fetch response skips, read off the raw response
  before aiokafka parses it: its first record batch starts past the offset the consumer asked
  for, or one batch starts past the end of the one before it. A Kafka broker never does that
  outside compacted topics: it appends a partition's batches in order and serves nothing past
  its high watermark. Such a hole is the broker's doing, not the client's;
* ``gap_check_at_once``: what the workers' input gap check (streams/input_gap_check.py) finds
  in each jumped range, started the moment the reader sees the jump: the number of records it
  found there against the number skipped. Fewer, and an input worker would take the skipped
  records for transaction markers;
* ``reread``: each jumped range read again after the producers stopped, and whether it holds
  the records the broker acknowledged there.

Found 2026-12-03 (bench/README.md, "The steady-state claims gap, explained"): with two producers,
the reader skipped 15–110 records in 8 of 32 runs of about a million records; where every batch
of the responses was checked, each skip was a hole in the broker's response, and the skipped
records were there when read again. With one producer, none in 4 runs.

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

from streams.input_gap_check import records_between  # noqa: E402
from streams.tansu.broker import LocalBroker, create_topics  # noqa: E402

TOPIC = "probe"
PARTITIONS = 4
RECORD_BYTES = 300


def holes(raw: bytes, fetch_offset: int) -> list[tuple[int, int]]:
    """(first missing offset, base offset of the batch after it) for every stretch of offsets
    that a raw fetch response (record batches, v2 format) skips, from the offset asked for on."""
    found = []
    expected, position = fetch_offset, 0
    while position + 27 <= len(raw):
        base_offset, batch_length = struct.unpack_from(">qi", raw, position)
        if position + 12 + batch_length > len(raw):
            break  # a partial batch at the end of the response: fetched again next time
        last_offset_delta = struct.unpack_from(">i", raw, position + 23)[0]
        if base_offset > expected:
            found.append((expected, base_offset))
        expected = max(expected, base_offset + last_offset_delta + 1)
        position += 12 + batch_length
    return found


class ResponseWatch:
    """Checks every partition's raw fetch response for offsets it skips.

    aiokafka builds ``MemoryRecords(raw)`` for a partition's response and, right after it in the
    same synchronous block, ``PartitionRecords(tp, records, aborted, fetch_offset, ...)``; the two
    wrappers below meet there. Probe-only: nothing in the pipeline patches aiokafka this way."""

    def __init__(self) -> None:
        self.holes: list[tuple[int, int, int]] = []
        self._raw = b""

    def install(self) -> None:
        memory_records, partition_records_init = aiokafka_fetcher.MemoryRecords, aiokafka_fetcher.PartitionRecords.__init__
        watch = self

        def memory_records_kept(raw):
            watch._raw = bytes(raw)
            return memory_records(raw)

        def partition_records_checked(self, tp, records, aborted, fetch_offset, *args, **kwargs):
            watch.holes.extend((tp.partition, missing, next_base) for missing, next_base in holes(watch._raw, fetch_offset))
            partition_records_init(self, tp, records, aborted, fetch_offset, *args, **kwargs)

        aiokafka_fetcher.MemoryRecords = memory_records_kept
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


async def read_along(bootstrap: str, producers_done: asyncio.Event, seen: dict, jumps: list, gap_checks: list) -> None:
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
                        gap_checks.append(asyncio.create_task(
                            records_between(bootstrap, TOPIC, tp.partition, next_offset[tp.partition], record.offset)))
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
    watch.holes.clear()
    with LocalBroker() as broker:
        create_topics(broker.bootstrap, {TOPIC: PARTITIONS})
        acknowledged: dict = {}
        seen: dict = {}
        jumps: list = []
        gap_checks: list = []
        producers_done = asyncio.Event()
        reader = asyncio.create_task(read_along(broker.bootstrap, producers_done, seen, jumps, gap_checks))
        started = time.monotonic()
        sent = await asyncio.gather(*(produce(broker.bootstrap, i, seconds, acknowledged) for i in range(producers)))
        producers_done.set()
        await reader
        found_at_once = [len(found) for found in await asyncio.gather(*gap_checks)]
        elapsed = time.monotonic() - started
        missed = sum(1 for key, value in acknowledged.items() if seen.get(key) != value)
        return {"producers": producers, "records": sum(sent), "seconds": round(elapsed, 1),
                "acknowledged": len(acknowledged), "read": len(seen), "missed_by_the_reader": missed,
                "consumer_jumps": [list(j) for j in jumps],
                "holes_in_fetch_responses": [list(h) for h in watch.holes],
                "gap_check_at_once": [{"skipped": to - frm, "found": n} for (_, frm, to), n in zip(jumps, found_at_once)],
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
                  f"{result['seconds']} s; consumer jumps {result['consumer_jumps']}; holes in fetch responses "
                  f"{result['holes_in_fetch_responses']}; gap check at once {result['gap_check_at_once']}; reread {result['reread']}", file=sys.stderr, flush=True)
    summary = {"probe": "tansu-concurrent-produce", "runs": runs,
               "runs_with_a_jump": sum(1 for r in runs if r["consumer_jumps"]),
               "records": sum(r["records"] for r in runs)}
    print(json.dumps(summary, indent=2) if args.json else
          f"{summary['runs_with_a_jump']} of {args.runs} runs had the reader skip records ({summary['records']:,} records in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
