"""Process settings for the long-running parts (replay, stream workers)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from typing import Callable

# The engine's running state only grows (a record per decided claim, kept for idempotency and
# refunds). With CPython's default thresholds (700, 10, 10) the collector keeps re-scanning
# that ever larger heap of survivors: more than half of the engine's time on a year of
# claims (bench/bench_rules.py: ~24,000 claims/s with the defaults, ~54,000 with these).
# Fewer, larger young collections keep cyclic garbage collected, only less often.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


#: seconds between a stream worker's reclaims of memory (``reclaim_memory``)
RECLAIM_SECONDS = 60.0


def _glibc_function(name: str) -> Callable[..., int] | None:
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None


_MALLOC_TRIM = _glibc_function("malloc_trim")
_MALLOPT = _glibc_function("mallopt")

#: glibc's ``M_MMAP_THRESHOLD`` (malloc.h) and the value a stream worker fixes it at (its default start)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


def map_large_allocations() -> bool:
    """Fix glibc's mmap threshold at 128 KiB for this process; False where there is no glibc.

    WHY: glibc starts by mapping every allocation of 128 KiB or more on its own pages and
    unmapping it when freed, but the first time such a block is freed it raises the threshold
    to that block's size (up to 32 MiB), so from then on a worker's large, short-lived buffers
    (fetched record batches, a stage batch's encoded outputs, up to 256 KiB) are carved out of
    the heap among long-lived allocations, and the heap grows. A fixed threshold keeps them off
    the heap. In two pairs of 10-minute 1-worker soaks run side by side (bench/README.md,
    "glibc's fixed mmap threshold") RSS grew 0.73 and 0.88 MiB a minute with it against 0.96 and 1.40
    without. The environment's ``MALLOC_MMAP_THRESHOLD_`` does the same for a whole process
    tree; this call is for the worker alone."""
    if _MALLOPT is None:
        return False
    return _MALLOPT(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1


def reclaim_memory() -> int:
    """A full collection, then freed memory handed back to the system; returns how many
    unreachable objects the collection found.

    WHY a worker collects every minute: with the thresholds above, a worker in a steady state
    hardly ever collects on its own. Nearly all it allocates is freed by reference counting, so
    the net allocations that start a young collection barely grow, and objects left in
    reference cycles are never freed. Found by a 30-minute soak (bench/README.md): 4,400-5,000
    objects a minute were left in cycles, SQLAlchemy statements built for each ledger batch
    (now built once: sinks/ledger/booking.py, and none found since); the collection stays for whatever
    else makes cycles (asyncio, Faust, a future statement).

    After the first collection, what is alive (modules, the app, its tables and clients: ~137,000
    tracked objects) is frozen out of every later one (``gc.freeze``): a full collection then
    traverses only what came later, 1.3-2.5 ms against 68-114 ms before (5-minute soaks). What
    was alive then and later becomes cyclic garbage is never freed: bounded by that one moment.

    WHY ``malloc_trim``: with no cycle left, a worker's RSS still grew about 1 MiB a minute in a
    soak while Python's allocated blocks and RocksDB's own accounting grew far less. Most of the
    rest was memory freed but kept by glibc's allocator (a stage batch's records are large,
    short-lived strings): trimming each minute gave back 1.2-7.3 MiB in 0.2-1 ms, and RSS after
    it rose 4.5 MiB in 9 minutes against 11 MiB without. It lowers the floor, not the peak
    between two trims, which still rose (bench/README.md, "The rest of the creep")."""
    found = gc.collect()
    if not gc.get_freeze_count():
        gc.freeze()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    return found
