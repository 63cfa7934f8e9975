"""Every fix of faust-streaming's and aiokafka's internals the workers run with, installed by one
call (``install``), and refused on versions they were not proven on (``versions.PROVEN_ON``,
pinned exactly in pyproject.toml). Each module names the upstream defect it works around:

* ``seek_fix``: after a rebalance Faust resumes stream partitions before it has sought them to
  their committed offsets, and takes the records it then fetches again for a gap
  (docs/decisions/0001-seek-to-committed-offsets-after-rebalance.md);
* ``skip_fix``: Faust counts records as processed that no agent was handed (gaps, records
  dropped during a rebalance or a shutdown) and commits past them
  (docs/decisions/0002-commit-only-what-a-stage-was-handed.md).

Deleting this folder (and the ``install`` call in streams/app.py) runs plain Faust, with those
defects. The tansu broker's own shims are in streams/tansu/; why the state table is ours, in
streams/state.py.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Collection

from streams.faust_runtime import seek_fix, skip_fix
from streams.faust_runtime.versions import require_proven_versions


def install(own_topics: Collection[str], on_gap: Callable[[object, int, int, str], None], *,
            on_dropped: Callable[[object, int], None], stage_topics: Collection[str],
            records_in: Callable[[object, int, int], Awaitable[list[int]]],
            on_input_gap: Callable[[object, int, int], None]) -> None:
    """Every fix, on the proven versions only (idempotent); the arguments are ``skip_fix.install``'s."""
    require_proven_versions()
    seek_fix.install()
    skip_fix.install(own_topics, on_gap, on_dropped=on_dropped, stage_topics=stage_topics, records_in=records_in,
                     on_input_gap=on_input_gap)
