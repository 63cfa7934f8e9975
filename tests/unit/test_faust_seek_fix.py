"""streams/faust_seek_fix.py on a stand-in consumer (Faust's own methods, a fake broker side):
a stream partition resumed before the seek is fetched only after the seek set its offsets."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from faust.transport.consumer import Consumer
from faust.types import TP

from streams import faust_seek_fix

FEED = TP("subsidy-ledger-feed", 1)
CHANGELOG = TP("app-subsidy-state-changelog", 1)


class StandInConsumer:
    """What Faust's Consumer methods touch, with the broker's committed offsets given."""

    pause_partitions = Consumer.pause_partitions

    def __init__(self, committed: dict):
        self._active_partitions: set = set()
        self._paused_partitions: set = {FEED, CHANGELOG}
        self._read_offset: dict = defaultdict(lambda: None, {FEED: 2702})  # read before the seek
        self._committed_offset: dict = defaultdict(lambda: None)
        self._committed = committed
        self.active_during_seek: set | None = None

    def _get_active_partitions(self) -> set:
        return self._active_partitions

    def _is_changelog_tp(self, tp) -> bool:
        return tp.topic.endswith("-changelog")

    def assignment(self) -> set:
        return {FEED, CHANGELOG}

    async def seek_to_committed(self) -> dict:
        self.active_during_seek = set(self._active_partitions)
        return dict(self._committed)


def test_a_stream_partition_is_fetched_again_only_after_the_seek_set_its_read_offset():
    faust_seek_fix.install()
    consumer = StandInConsumer({FEED: 1965})
    Consumer.resume_partitions(consumer, {FEED, CHANGELOG})  # what recovery does first
    assert consumer._active_partitions == {CHANGELOG}  # the changelog is resumed, the stream waits
    asyncio.run(Consumer.perform_seek(consumer))
    assert FEED not in consumer.active_during_seek
    assert consumer._read_offset[FEED] == 1965 and consumer._committed_offset[FEED] == 1965
    assert consumer._active_partitions == {FEED, CHANGELOG} and not consumer._paused_partitions
