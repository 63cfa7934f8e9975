"""Halt a stage that is handed a record beyond the next one of its partition.

The pipeline's own topics (subsidy-claims, subsidy-ledger-feed) are written without
transactions and never compacted, so their offsets have no holes: a stage that sees offset
N+3 right after N has been skipped records, and Faust (its consumer takes such a jump for a
compacted topic's gap and acknowledges it) would commit past them, unprocessed. A soak run
lost two claims this way or a way like it (bench/README.md) after streams/faust_seek_fix.py
had closed the path it explains. The guard turns such a loss into a halt: the stage exits
before acknowledging the batch, and a restarted worker reads again from the committed offset.

Only jumps inside one consumer generation count: after a rebalance another worker may have
moved the partition on. A seek back (recovery's) is a repeat, not a loss; the stall watch's
seek to the committed offset (streams/stall_watch.py) may move forward of what the agent last
saw, so it starts the partition over (``forget``).
"""

from __future__ import annotations

from typing import Hashable


class OffsetGuard:
    """Pure: per partition, the offset after the last one seen in the current generation."""

    def __init__(self) -> None:
        self._next: dict[Hashable, tuple[int, int]] = {}

    def skipped_to(self, tp: Hashable, offset: int, generation: int) -> int | None:
        """The offset that should have come before ``offset`` if records were skipped, else None."""
        known = self._next.get(tp)
        if known is not None and known[0] == generation:
            if offset > known[1]:
                return known[1]
            if offset < known[1]:
                return None  # a repeat after a seek: the position stays where it got to
        self._next[tp] = (generation, offset + 1)
        return None

    def forget(self, tp: Hashable) -> None:
        """After a deliberate seek (streams/stall_watch.py) the partition starts over."""
        self._next.pop(tp, None)
