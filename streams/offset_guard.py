"""Halt a stage that is handed a record beyond the next one of its partition.

subsidy-claims is written without transactions and never compacted, so a jump in its offsets
is a skip, which Faust would take for a compaction gap and commit past. The stage exits before
acknowledging the batch, and a restarted worker reads again from the committed offset. Inside a
consumer generation a jump past the next offset is a skip; a generation's first record must be
at or before the group's committed offset; a seek back is a repeat; after the stall watch's seek
a partition starts over unchecked (``forget``).

WHY (a soak lost claims after the seek fix): docs/decisions/0006-halt-on-an-offset-jump.md.
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
