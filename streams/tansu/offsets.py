"""Local broker only: true end offsets for Faust's table recovery, so workers may batch.

tansu answers ListOffsets LATEST with (base offset of the newest record batch + 1), so a restore
would drop the last records of that batch. After Faust's own ``end_offsets`` call, this fetches
from (reported end - 1) and takes the offset after the last record it gets: the same number on a
correct broker, and never beyond records that exist. Installed by the local worker
(streams/tansu/worker.py) only. WHY not ``producer_max_batch_size=1``, the first fix:
docs/decisions/0009-tansu-shims.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

from streams.faust_runtime.versions import require_proven_versions

log = logging.getLogger("streams.tansu")

_INSTALLED = {"done": False}


async def true_end_offsets(bootstrap: list[str] | str, reported: Mapping[Any, int], *, timeout: float = 10.0) -> dict:
    """``reported``: tp -> end offset from ListOffsets; returns tp -> offset after the last record."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    result = dict(reported)
    todo = {tp: end for tp, end in reported.items() if end}
    if not todo:
        return result
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="none", isolation_level="read_uncommitted")
    await consumer.start()
    try:
        parts = {TopicPartition(tp.topic, tp.partition): tp for tp in todo}
        consumer.assign(list(parts))
        for ktp, tp in parts.items():
            consumer.seek(ktp, todo[tp] - 1)
        pending = set(parts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending and loop.time() < deadline:
            got = await consumer.getmany(*pending, timeout_ms=500)
            for ktp, records in got.items():
                if records:
                    tp = parts[ktp]
                    result[tp] = max(result[tp], records[-1].offset + 1)
                    pending.discard(ktp)
        if pending:
            log.warning("true end offsets: no record fetched for %s; keeping the reported ends", sorted(map(str, pending)))
    finally:
        await consumer.stop()
    changed = {f"{tp.topic}[{tp.partition}]": (reported[tp], result[tp]) for tp in todo if result[tp] != reported[tp]}
    if changed:
        log.info("true end offsets (reported -> true): %s", changed)
    return result


def install() -> None:
    """Make Faust's aiokafka consumer thread correct its high-waters (idempotent)."""
    if _INSTALLED["done"]:
        return
    require_proven_versions()
    from faust.transport.drivers import aiokafka as driver

    original = driver.AIOKafkaConsumerThread._highwaters

    async def _highwaters(self, partitions):
        reported = await original(self, partitions)
        if self.consumer.in_transaction:
            return reported
        try:
            return await true_end_offsets(driver.server_list(self.transport.url, self.transport.default_port), reported)
        except Exception as exc:  # noqa: BLE001 - never worse than Faust's own answer
            log.warning("true end offsets failed (%s: %s); using the reported ones", type(exc).__name__, exc)
            return reported

    driver.AIOKafkaConsumerThread._highwaters = _highwaters
    _INSTALLED["done"] = True
