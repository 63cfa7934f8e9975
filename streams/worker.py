"""Run one pipeline worker: ``python -m streams.worker`` (production: configuration from the
environment, see streams/config.py; no local-broker settings).

Before starting it makes sure every topic exists with the partition count the app expects
(idempotent; a mismatch stops it with a message) and that the ledger schema is current.
"""

from __future__ import annotations

import logging
import sys

from streams.config import StreamConfig


def prepare(config: StreamConfig, *, create_topics: bool = True) -> None:
    from sinks.ledger import DEFAULT_LEDGER_URL, Ledger
    from streams.topics import ensure_topics, expected_topics

    if create_topics:
        ensure_topics(config.bootstrap, expected_topics(config.app_id, config.partitions))
    Ledger.open(config.ledger_url or DEFAULT_LEDGER_URL).close()  # create/upgrade the schema once, before the agents


def run_worker(config: StreamConfig, *, loglevel: str = "info", create_topics: bool = True) -> int:
    """Start a Faust worker for ``config`` in this process; returns when it stops."""
    from faust.worker import Worker

    from streams.app import build_app
    from subsidy.runtime import map_large_allocations, tune_gc

    tune_gc()
    map_large_allocations()
    prepare(config, create_topics=create_topics)
    app = build_app(config)
    worker = Worker(app, loglevel=loglevel, logfile=None, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG (so it can spin on every record):
    # every debug call of Faust and aiokafka then builds a LogRecord that the handler drops,
    # about 12 % of a busy worker's CPU (py-spy, bench/README.md). A service needs no spinner.
    worker.spinner = None
    worker.execute_from_commandline()  # exits the process (sys.exit) when the worker stops
    return 0


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    run_worker(StreamConfig.from_env())


if __name__ == "__main__":
    sys.exit(main())
