"""Ask the broker whether offsets Faust skipped in an input topic hold records.

Every gap Faust would commit past in an input (``Consumer._add_gap``) is read back from the
broker with the workers' own isolation level first: a record found there stops the worker
before any commit passes it; none (a transaction marker, a record compacted away) lets Faust
take the gap. One fetch round trip per gap, with a consumer of its own (no group, nothing
committed), started for the check and closed after it.

WHY: docs/decisions/0003-read-input-gaps-back-from-the-broker.md.
"""

from __future__ import annotations

import asyncio

#: Faust's worker consumers read uncommitted records (``exactly_once`` is off), so a record of
#: an aborted transaction is handed to intake and is not a gap; the check must see the same.
WORKER_ISOLATION_LEVEL = "read_uncommitted"


class GapCheckFailed(Exception):
    """The broker could not say what the skipped offsets hold."""


async def records_between(bootstrap: str, topic: str, partition: int, first: int, after: int,
                          timeout: float = 10.0) -> list[int]:
    """The offsets in ``first .. after - 1`` of ``topic[partition]`` at which the broker holds
    a record that a worker's consumer is handed; empty when they are all transaction markers or
    compacted away. ``after`` is the offset Faust read next, so the partition reaches it."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    tp = TopicPartition(topic, partition)
    # auto_offset_reset "none": an offset older than the topic's retention raises here rather
    # than quietly reading from the oldest record still held
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="none", isolation_level=WORKER_ISOLATION_LEVEL,
                                fetch_max_wait_ms=50)  # the local broker answers only when its wait is over
    try:
        async with asyncio.timeout(timeout):
            await consumer.start()
            consumer.assign([tp])
            consumer.seek(tp, first)
            held: list[int] = []
            while True:
                for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, ()):
                    if record.offset >= after:
                        return held
                    if record.offset >= first:
                        held.append(record.offset)
                if await consumer.position(tp) >= after:  # the rest were markers
                    return held
    except (KafkaError, TimeoutError, OSError) as exc:
        raise GapCheckFailed(f"could not read {topic}[{partition}] @{first}..@{after - 1} back from "
                             f"{bootstrap}: {exc!r}") from exc
    finally:
        await consumer.stop()
