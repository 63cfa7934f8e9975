"""The timed reclaim of memory of a stream worker (subsidy/runtime.py)."""

from __future__ import annotations

import gc
import platform
import weakref

import pytest

from subsidy import runtime
from subsidy.runtime import reclaim_memory


class Node:
    def __init__(self):
        self.itself = self  # a reference cycle: reference counting alone never frees it


def cycle() -> weakref.ref:
    return weakref.ref(Node())


def test_reclaims_free_cycles_and_freeze_what_was_alive_at_the_first():
    gc.unfreeze()  # as in a worker before its first reclaim, whatever ran before in this process
    gc.disable()  # only reclaim_memory collects here
    try:
        first = cycle()
        reclaim_memory()
        assert first() is None
        frozen = gc.get_freeze_count()
        assert frozen > 0  # the heap alive after the first collection is left out of later ones
        second = cycle()
        reclaim_memory()
        assert second() is None  # cycles made later are still freed
        assert gc.get_freeze_count() == frozen  # frozen once, not at every collection
    finally:
        gc.unfreeze()
        gc.enable()


def test_freed_memory_is_handed_back_to_the_system(monkeypatch):
    pads = []
    monkeypatch.setattr(runtime, "_MALLOC_TRIM", lambda pad: pads.append(pad) or 1)
    try:
        reclaim_memory()
    finally:
        gc.unfreeze()
    assert pads == [0]  # keep no free memory at the top of the heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_malloc_trim_is_found_on_glibc():
    assert runtime._MALLOC_TRIM is not None
    assert runtime._MALLOC_TRIM(0) in (0, 1)  # 1: memory was released


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_large_allocations_are_mapped_on_glibc():
    assert runtime.map_large_allocations()  # glibc accepted the fixed threshold


def test_no_glibc_no_fixed_threshold(monkeypatch):
    monkeypatch.setattr(runtime, "_MALLOPT", None)
    assert not runtime.map_large_allocations()
