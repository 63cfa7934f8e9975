"""Keep stream partitions paused until Faust has sought them to their committed offsets.

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
"""

from __future__ import annotations

from faust.transport.consumer import Consumer

from streams.faust_patching import require_faust

_INSTALLED = {"done": False}


def install() -> None:
    """Patch Faust's Consumer (idempotent)."""
    if _INSTALLED["done"]:
        return
    patched_or_called = ("resume_partitions", "perform_seek", "_is_changelog_tp", "pause_partitions")
    require_faust("streams/faust_seek_fix.py", *((Consumer, name) for name in patched_or_called))
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

    Consumer.resume_partitions = resume_partitions  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    _INSTALLED["done"] = True
