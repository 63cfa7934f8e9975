"""Keep stream partitions paused until Faust has sought them to their committed offsets (or,
where nothing was committed, to their beginning).

WHY: after a rebalance faust-streaming 0.15.3 resumes stream partitions before that seek and
commits the records fetched meanwhile as a "gap", unprocessed; and aiokafka's
``seek_to_committed`` leaves a partition nobody committed where the fetcher stands, past records
Faust dropped. The incidents and the fix: docs/decisions/0001-seek-to-committed-offsets-after-rebalance.md.
"""

from __future__ import annotations

from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.faust_runtime.versions import require_faust

_INSTALLED = {"done": False}


def install() -> None:
    """Patch Faust's Consumer (idempotent)."""
    if _INSTALLED["done"]:
        return
    patched_or_called = ("resume_partitions", "perform_seek", "_is_changelog_tp", "pause_partitions")
    require_faust("streams/faust_runtime/seek_fix.py", *((Consumer, name) for name in patched_or_called),
                  (AIOKafkaConsumerThread, "seek_to_committed"), (AIOKafkaConsumerThread, "_ensure_consumer"))
    original_resume = Consumer.resume_partitions
    original_seek = Consumer.perform_seek

    def resume_partitions(self, tps) -> None:
        tps = set(tps)
        streams = {tp for tp in tps if not self._is_changelog_tp(tp)}
        if streams:
            deferred = self.__dict__.setdefault("_resume_after_seek", set())
            deferred.update(streams)
            self.pause_partitions(streams)  # paused until perform_seek has run
        original_resume(self, tps - streams)

    async def perform_seek(self) -> None:
        await original_seek(self)
        deferred = self.__dict__.get("_resume_after_seek")
        if deferred:
            assigned = self.assignment()
            original_resume(self, {tp for tp in deferred if tp in assigned})
            deferred.clear()

    async def seek_to_committed(self):
        consumer = self._ensure_consumer()
        from_beginning = self.consumer.app.conf.consumer_auto_offset_reset == "earliest"

        async def seek() -> dict:
            committed = await consumer.seek_to_committed()
            uncommitted = [tp for tp, offset in committed.items()
                           if not (offset and offset > 0) and not self.consumer._is_changelog_tp(tp)]
            if from_beginning and uncommitted:
                await consumer.seek_to_beginning(*uncommitted)
            return committed

        return await self.call_thread(seek)

    Consumer.resume_partitions = resume_partitions  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    _INSTALLED["done"] = True
