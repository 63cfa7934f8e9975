"""Re-read a partition whose fetched records Faust stopped handing to its agent.

Each worker looks every ``interval`` seconds: a partition whose fetch position is beyond the
record after the last one Faust delivered, with no record of its topic waiting in an agent's
queue, the same for ``checks`` looks in a row, is stalled, and is sought back to its committed
offset. Whatever comes again after that offset is decided once: every stage is idempotent by id
(streams/stages.py).

WHY (Faust's ``Consumer.getmany`` drops fetched records of a partition not active at that
moment, and a worker idled after a rebalance): docs/decisions/0007-re-read-stalled-partitions.md.
"""

from __future__ import annotations

from typing import Hashable, Mapping, NamedTuple

#: seconds between looks, and looks in a row that make a stall
STALL_CHECK_SECONDS = 5.0
STALL_CHECKS = 3


class PartitionSample(NamedTuple):
    delivered_next: int  # offset after the last record Faust handed to the stream
    position: int  # the fetcher's next offset
    queued: int  # records of the partition's topic waiting in agent queues


class StallWatch:
    """Pure: fed samples, tells which partitions have been stalled for ``checks`` looks."""

    def __init__(self, checks: int = STALL_CHECKS):
        self.checks = checks
        self._seen: dict[Hashable, tuple[PartitionSample, int]] = {}

    def stalled(self, samples: Mapping[Hashable, PartitionSample]) -> list[Hashable]:
        seen: dict[Hashable, tuple[PartitionSample, int]] = {}
        found = []
        for tp, sample in samples.items():
            if sample.position <= sample.delivered_next or sample.queued:
                continue  # everything fetched was delivered, or the agent has work queued
            previous = self._seen.get(tp)
            looks = previous[1] + 1 if previous and previous[0] == sample else 1
            if looks >= self.checks:
                found.append(tp)  # forgotten: the seek starts its history over
            else:
                seen[tp] = (sample, looks)
        self._seen = seen
        return found
