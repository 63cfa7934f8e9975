"""streams/faust_runtime/seek_fix.py on a stand-in consumer (Faust's own methods, a fake broker side):
a stream partition resumed before the seek is fetched only after the seek set its offsets, and
the seek sends a stream partition nobody committed back to its beginning."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace

import pytest
from aiokafka.structs import TopicPartition
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from streams.faust_runtime import seek_fix as faust_seek_fix

CLAIMS = TP("subsidy-claims", 1)
CHANGELOG = TP("app-subsidy-state-changelog", 1)


class StandInConsumer:
    """What Faust's Consumer methods touch, with the broker's committed offsets given."""

    pause_partitions = Consumer.pause_partitions

    def __init__(self, committed: dict):
        self._active_partitions: set = set()
        self._paused_partitions: set = {CLAIMS, CHANGELOG}
        self._read_offset: dict = defaultdict(lambda: None, {CLAIMS: 2702})  # read before the seek
        self._committed_offset: dict = defaultdict(lambda: None)
        self._committed = committed
        self.active_during_seek: set | None = None

    def _get_active_partitions(self) -> set:
        return self._active_partitions

    def _is_changelog_tp(self, tp) -> bool:
        return tp.topic.endswith("-changelog")

    def assignment(self) -> set:
        return {CLAIMS, CHANGELOG}

    async def seek_to_committed(self) -> dict:
        self.active_during_seek = set(self._active_partitions)
        return dict(self._committed)


def test_a_stream_partition_is_fetched_again_only_after_the_seek_set_its_read_offset():
    faust_seek_fix.install()
    consumer = StandInConsumer({CLAIMS: 1965})
    Consumer.resume_partitions(consumer, {CLAIMS, CHANGELOG})  # what recovery does first
    assert consumer._active_partitions == {CHANGELOG}  # the changelog is resumed, the stream waits
    asyncio.run(Consumer.perform_seek(consumer))
    assert CLAIMS not in consumer.active_during_seek
    assert consumer._read_offset[CLAIMS] == 1965 and consumer._committed_offset[CLAIMS] == 1965
    assert consumer._active_partitions == {CLAIMS, CHANGELOG} and not consumer._paused_partitions


class StandInAIOKafkaConsumer:
    """aiokafka's seek_to_committed: no seek where nothing (or 0) was committed."""

    def __init__(self, committed: dict):
        self.committed = committed
        self.sought_to_beginning: list = []

    async def seek_to_committed(self) -> dict:
        return dict(self.committed)

    async def seek_to_beginning(self, *partitions) -> bool:
        self.sought_to_beginning += partitions
        return True


def test_a_stream_partition_nobody_committed_is_sought_to_its_beginning():
    faust_seek_fix.install()
    uncommitted, committed_zero = TopicPartition("subsidy-claims", 2), TopicPartition("subsidy-claims", 3)
    committed_on = TopicPartition(CLAIMS.topic, CLAIMS.partition)
    changelog = TopicPartition(CHANGELOG.topic, CHANGELOG.partition)
    kafka = StandInAIOKafkaConsumer({uncommitted: None, committed_zero: 0, committed_on: 1965, changelog: None})

    async def call_thread(fun, *args):
        return await fun(*args)

    def thread(auto_offset_reset: str) -> SimpleNamespace:
        app = SimpleNamespace(conf=SimpleNamespace(consumer_auto_offset_reset=auto_offset_reset))
        faust_consumer = SimpleNamespace(app=app, _is_changelog_tp=lambda tp: tp.topic.endswith("-changelog"))
        return SimpleNamespace(_ensure_consumer=lambda: kafka, consumer=faust_consumer, call_thread=call_thread)

    committed = asyncio.run(AIOKafkaConsumerThread.seek_to_committed(thread("earliest")))
    assert committed[committed_on] == 1965 and committed[uncommitted] is None  # what Faust's perform_seek reads
    # the fetcher stood past records Faust dropped; the changelog is recovery's to position
    assert set(kafka.sought_to_beginning) == {uncommitted, committed_zero}
    kafka.sought_to_beginning.clear()
    asyncio.run(AIOKafkaConsumerThread.seek_to_committed(thread("latest")))
    assert kafka.sought_to_beginning == []  # another reset policy is left to aiokafka


def test_a_faust_without_the_patched_method_is_refused_not_silently_unfixed():
    from streams.faust_runtime.versions import require_faust

    with pytest.raises(RuntimeError, match="Consumer has no no_such_method: streams/faust_runtime/seek_fix.py was written for faust-streaming 0.15"):
        require_faust("streams/faust_runtime/seek_fix.py", (Consumer, "commit"), (Consumer, "no_such_method"))


def test_the_pins_are_the_versions_the_fixes_were_proven_on_and_others_are_refused(monkeypatch):
    import re
    from pathlib import Path

    from streams.faust_runtime import versions as faust_patching

    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    pinned = dict(re.findall(r'"([a-z-]+)==([0-9.]+)"', pyproject))
    assert {name: pinned.get(name) for name in faust_patching.PROVEN_ON} == faust_patching.PROVEN_ON
    faust_patching.require_proven_versions()  # the installed ones

    installed = dict(faust_patching.PROVEN_ON, aiokafka="0.15.0")
    monkeypatch.setattr(faust_patching, "version", installed.__getitem__)
    with pytest.raises(faust_patching.UnprovenVersions, match=r"not proven on aiokafka 0\.15\.0 \(proven: 0\.14\.0\): install the pinned"):
        faust_patching.require_proven_versions()
