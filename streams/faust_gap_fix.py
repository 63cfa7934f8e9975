"""Never let Faust take records of the pipeline's own topics for a gap.

WHY: when faust-streaming 0.15.3 fetches a record more than one offset past the last one it
delivered, it assumes the records in between cannot be read (a compacted topic, transaction
markers) and files them as a "gap" (``Consumer._add_gap``) that its next commit counts as
processed. The pipeline's own topics (claims, ledger feed) are never compacted and never
written in transactions, so there such a jump only means records were skipped on the way to
the agents, and the commit would lose them: a claim never decided, or a payment never booked
(the ledger then refuses its clawback). That is how the rebalance seek defect
(streams/faust_seek_fix.py) lost records. The agents' offset guard (streams/offset_guard.py)
sees the jump too, but only when the record after it reaches the agent, and a commit can fall
in between. Here the gap is refused where it is made: the worker is stopped before any commit
can count it, and a restarted worker reads those records again.
"""

from __future__ import annotations

from typing import Callable, Collection

from faust.transport.consumer import Consumer

from streams.faust_patching import require_faust

_FIX: dict = {"installed": False, "topics": frozenset(), "on_gap": None}


def install(topics: Collection[str], on_gap: Callable[[object, int, int], None]) -> None:
    """Patch Faust's Consumer (idempotent): a gap in ``topics`` calls ``on_gap(tp, first, last)``,
    which must not return normally (it stops the worker); other topics keep Faust's behaviour."""
    _FIX["topics"] = frozenset(topics)
    _FIX["on_gap"] = on_gap
    if _FIX["installed"]:
        return
    require_faust("streams/faust_gap_fix.py", (Consumer, "_add_gap"))
    original_add_gap = Consumer._add_gap

    async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
        if tp.topic in _FIX["topics"]:
            _FIX["on_gap"](tp, offset_from, offset_to)
            raise RuntimeError(f"records {offset_from}..{offset_to - 1} of {tp} were skipped")  # on_gap must stop us first
        await original_add_gap(self, tp, offset_from, offset_to)

    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
    _FIX["installed"] = True
