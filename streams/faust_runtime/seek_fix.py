"""Keep stream partitions paused until Faust has sought them to their committed offsets (or,
where nothing was committed, to their beginning).

WHY: faust-streaming 0.15.3 loses records after a rebalance. Found with the rebalance test
(tests/integration/test_pipeline.py::test_two_workers_with_rebalance failed about one run in
five), instrumented in Faust's consumer, on the local broker; the code path is not broker
specific. When a worker takes partitions over, Faust's table recovery ends with

    consumer.resume_partitions(stream partitions)   # the fetcher delivers them at once
    await consumer.perform_seek()                    # seek them back to the committed offsets

In the ~0.3 s the seek takes, the fetcher hands the agents hundreds of records from where it
stood (read offset -> 2702 on a ledger-feed partition). The seek then moves the fetcher back
(to 1965), but Faust updates its read offsets only when the seek returns, so the records it
fetches again meanwhile are dropped as "already read" (offset < 2702); once the read offset
is reset to 1965 the next record is 2315, and Faust takes 1966..2314 for a gap (as in a
compacted topic) and acknowledges it. Its offsets are committed: those records are never
processed. Seen as inputs missing from the ledger (4,990 of 4,997 accounted for), as a
clawback reaching the ledger before its payment (the ledger refused it and the worker
halted), and as a partition whose fetched records never reached the agent (the worker idled;
see streams/stall_watch.py).

The fix: a stream partition resumed while the seek is still to come stays paused, and is
resumed by the seek once it has set both the fetch positions and Faust's read offsets. Table
changelog partitions are resumed as before (recovery reads them without a seek).

WHY the seek also goes to the beginning of a partition nobody has committed: Faust's getmany
drops fetched records it cannot hand over (flow stopped, the generation changed, a partition not
active yet) and counts on that seek to fetch them again; but aiokafka's ``seek_to_committed``
leaves a partition without a committed offset (or with offset 0) where the fetcher stands. A
worker killed before its first commit left subsidy-claims[1] without one; its successor fetched
@0.. during its rebalance, dropped them, and its decide stage was handed @929 first. The claims
before it were never read again: some never decided, some decided and booked by the killed
worker but missing from the changelog, so the ledger then refused a later payment of the same
buyer as a cap overrun (2 runs in 10 of a loop of the kill -9 test's scenario: bench/README.md).
With ``auto_offset_reset`` "earliest" (ours), no committed offset means "from the beginning",
so such a partition is sought there.
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
