"""Process settings for the long-running parts (replay, stream workers)."""

from __future__ import annotations

import gc

# The engine's running state only grows (a record per decided claim, kept for idempotency and
# refunds). With CPython's default thresholds (700, 10, 10) the collector keeps re-scanning
# that ever larger heap of survivors: more than half of the engine's time on a year of
# claims (bench/bench_rules.py: ~24,000 claims/s with the defaults, ~54,000 with these).
# Fewer, larger young collections keep cyclic garbage collected, only less often.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


#: seconds between a stream worker's full collections (``collect_cycles``)
FULL_COLLECTION_SECONDS = 60.0


def collect_cycles() -> int:
    """A full collection; returns how many unreachable objects it found.

    WHY a worker runs one every minute: with the thresholds above, a worker in a steady state
    hardly ever collects on its own. Nearly all it allocates is freed by reference counting, so
    the net allocations that start a young collection barely grow, while the objects left in
    reference cycles (SQLAlchemy statements built for each ledger batch, asyncio and Faust
    internals) are never freed. Found by a 30-minute soak (bench/README.md): RSS grew about
    1 MiB a minute, part of it this; 1,000-1,600 SQLAlchemy bind parameters were waiting in
    cycles at any time, ~20 after a ``gc.collect()`` (3,000-4,700 objects freed a minute, in
    76-103 ms)."""
    return gc.collect()
