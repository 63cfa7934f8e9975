"""Local broker only: short fetch waits, because tansu does not answer a waiting fetch when data arrives.

:func:`install` makes Faust's consumer wait at most :data:`LOCAL_FETCH_MAX_WAIT_MS` instead of
its hard-coded 1,500 ms; installed by the local worker (streams/tansu/worker.py) only.
WHY, with the latencies measured: docs/decisions/0009-tansu-shims.md.
"""

from __future__ import annotations

from streams.faust_runtime.versions import require_proven_versions

LOCAL_FETCH_MAX_WAIT_MS = 50

_INSTALLED = {"done": False}


def install() -> None:
    """Make the consumers Faust creates wait at most LOCAL_FETCH_MAX_WAIT_MS per fetch (idempotent)."""
    if _INSTALLED["done"]:
        return
    require_proven_versions()
    from faust.transport.drivers import aiokafka as driver

    original = driver.AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self, transport):
        consumer = original(self, transport)
        # read by aiokafka's Fetcher, which the consumer builds in start(), after this
        consumer._fetch_max_wait_ms = LOCAL_FETCH_MAX_WAIT_MS
        return consumer

    driver.AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
    _INSTALLED["done"] = True
