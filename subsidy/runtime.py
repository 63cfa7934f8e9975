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
