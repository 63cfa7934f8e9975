"""Local broker only: short fetch waits, because tansu does not answer a waiting fetch when data arrives.

A Kafka consumer's fetch asks for at least 1 byte and says how long the broker may wait for
it (``fetch_max_wait_ms``; Faust hard-codes 1,500 ms). Kafka answers as soon as a record
arrives; tansu answers only when the wait is over. Measured here (one record produced every
0.13 s, produce → consume): 0.72 s median and 1.48 s worst with a 1,500 ms wait, 0.02 s and
0.07 s with 100 ms. The pipeline had three consumer hops then (intake, decide, ledger), so on tansu
the broker alone added up to 4.5 s to an event's way to the ledger (bench/README.md, latency).

:func:`install` makes Faust's consumer wait at most :data:`LOCAL_FETCH_MAX_WAIT_MS`: an idle
worker then sends a few fetches a second, nothing to a broker on loopback. Installed by the
local worker (streams/tansu/worker.py) only; production Kafka keeps Faust's 1,500 ms.
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
