"""Halt a stage that is handed a record beyond the next one of its partition.

The pipeline's own topic (subsidy-claims) is written without transactions and never
compacted, so its offsets have no holes: a stage that sees offset N+3 right after N has been
skipped records, and Faust (its consumer takes such a jump for a compacted topic's gap and
acknowledges it) would commit past them, unprocessed. A soak run lost two claims this way or a
way like it (bench/README.md) after streams/faust_runtime/seek_fix.py had closed the path it explains.
The guard turns such a loss into a halt: the stage exits before acknowledging the batch, and a
restarted worker reads again from the committed offset.

Inside one consumer generation, a jump past the next offset is a skip. At the start of a
generation (a rebalance, or the worker's start) the first record of a partition must be at or
before the group's committed offset (the next record to read; before it is a repeat): past it,
the records in between were never handed over (streams/faust_runtime/skip_fix.py keeps Faust from
committing them; this names the skip where the stage sees it). A seek back (recovery's) is a
repeat, not a loss; the stall watch's seek to the committed offset (streams/stall_watch.py) may
leave records fetched before it in flight, so after it the partition starts over unchecked
(``forget``).
"""

from __future__ import annotations

from typing import Hashable


class OffsetGuard:
    """Pure: per partition, the offset after the last one seen in the current generation."""

    def __init__(self) -> None:
        self._next: dict[Hashable, tuple[int, int]] = {}
        self._sought: set[Hashable] = set()

    def skipped_to(self, tp: Hashable, offset: int, generation: int, committed: int | None = None) -> int | None:
        """The offset that should have come before ``offset`` if records were skipped, else None.
        ``committed``: the group's committed offset of ``tp`` as the consumer knows it, if any."""
        known = self._next.get(tp)
        if known is not None and known[0] == generation:
            if offset > known[1]:
                return known[1]
            if offset < known[1]:
                return None  # a repeat after a seek: the position stays where it got to
        elif committed is not None and offset > committed and tp not in self._sought:
            return committed
        self._sought.discard(tp)
        self._next[tp] = (generation, offset + 1)
        return None

    def starts(self, tp: Hashable, generation: int) -> bool:
        """Whether a record of ``tp`` in ``generation`` would be the first one seen."""
        known = self._next.get(tp)
        return known is None or known[0] != generation

    def forget(self, tp: Hashable) -> None:
        """After a deliberate seek (streams/stall_watch.py) the partition starts over."""
        self._next.pop(tp, None)
        self._sought.add(tp)
