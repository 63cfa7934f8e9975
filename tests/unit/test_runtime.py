"""The timed full collection of a stream worker (subsidy/runtime.py)."""

from __future__ import annotations

import gc
import weakref

from subsidy.runtime import collect_cycles


class Node:
    def __init__(self):
        self.itself = self  # a reference cycle: reference counting alone never frees it


def cycle() -> weakref.ref:
    return weakref.ref(Node())


def test_collections_free_cycles_and_freeze_what_was_alive_at_the_first():
    assert gc.get_freeze_count() == 0
    gc.disable()  # only collect_cycles collects here
    try:
        first = cycle()
        collect_cycles()
        assert first() is None
        frozen = gc.get_freeze_count()
        assert frozen > 0  # the heap alive after the first collection is left out of later ones
        second = cycle()
        collect_cycles()
        assert second() is None  # cycles made later are still freed
        assert gc.get_freeze_count() == frozen  # frozen once, not at every collection
    finally:
        gc.unfreeze()
        gc.enable()
