"""Run one pipeline worker: ``python -m streams.worker`` (production: configuration from the
environment, see streams/config.py; no local-broker settings).

Before starting it makes sure the ledger schema is current, creates the topics that are missing
with their settings, and checks every topic's partitions, replication and settings
(streams/topics.py): a topic that could lose state stops it with one line that says what to fix.
"""

from __future__ import annotations

import logging
import sys

from streams.config import StreamConfig

#: exit status of a worker that could not reach its broker or its ledger at start (sysexits' EX_UNAVAILABLE)
UNAVAILABLE_EXIT = 69
#: exit status of a worker whose topics do not fit its configuration (sysexits' EX_CONFIG)
CONFIG_EXIT = 78


class WorkerCannotStart(RuntimeError):
    """Why a worker stops before its agents start, in one line that says what to fix."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def prepare(config: StreamConfig, *, create_topics: bool = True, check_topics: bool = True) -> None:
    """``create_topics`` False: a missing topic stops the worker; ``check_topics`` False: the
    broker is not asked (the local tansu, whose topics streams/local.py made)."""
    from kafka.errors import KafkaError

    from sinks.ledger import DEFAULT_LEDGER_URL, Ledger, first_line, shown_url
    from streams.faust_runtime.versions import UnprovenVersions, require_proven_versions
    from streams.topics import TopicError, inspect_topics, unreachable

    try:
        require_proven_versions()
    except UnprovenVersions as exc:
        raise WorkerCannotStart(str(exc), CONFIG_EXIT) from None
    url = config.ledger_url or DEFAULT_LEDGER_URL
    try:
        Ledger.open(url).close()  # create/upgrade the schema once, before the agents
    except Exception as exc:  # noqa: BLE001 - any failure to open is the URL's or the database's
        raise WorkerCannotStart(f"cannot open the ledger {shown_url(url)} ({first_line(exc)}): check --ledger or $SUBSIDY_LEDGER_URL, "
                                "and that the database is up", UNAVAILABLE_EXIT) from None
    if config.checkpoint_key:
        from sinks.ledger.checkpoints import CheckpointError, SigningKey

        try:
            SigningKey.load(config.checkpoint_key)
        except CheckpointError as exc:
            raise WorkerCannotStart(f"{exc} ($SUBSIDY_CHECKPOINT_KEY)", CONFIG_EXIT) from None
    if not check_topics:
        return
    print(f"worker: {'creating missing topics and ' if create_topics else ''}checking the topics on {config.bootstrap}",
          file=sys.stderr, flush=True)
    unfit = f"the topics on {config.bootstrap} do not fit this worker"
    try:
        report = inspect_topics(config.bootstrap, config.app_id, config.partitions, config.replication, create_missing=create_topics)
    except TopicError as exc:
        raise WorkerCannotStart(f"{unfit}: {exc}", CONFIG_EXIT) from None
    except KafkaError as exc:
        raise WorkerCannotStart(unreachable(config.bootstrap, exc), UNAVAILABLE_EXIT) from None
    if report.created:
        print(f"worker: created topics {', '.join(report.created)}", file=sys.stderr, flush=True)
    for problem in report.problems:
        if not problem.stops_worker:
            print(f"worker: warning: {problem.line()}", file=sys.stderr, flush=True)
    refusal = report.refusal()
    if refusal:
        raise WorkerCannotStart(f"{unfit}: {refusal}", CONFIG_EXIT)


def run_worker(config: StreamConfig, *, loglevel: str = "info", create_topics: bool = True, check_topics: bool = True) -> int:
    """Start a Faust worker for ``config`` in this process; returns when it stops."""
    from faust.worker import Worker

    from streams.app import build_app
    from subsidy.runtime import map_large_allocations, tune_gc

    tune_gc()
    map_large_allocations()
    prepare(config, create_topics=create_topics, check_topics=check_topics)
    app = build_app(config)
    worker = Worker(app, loglevel=loglevel, logfile=None, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG (so it can spin on every record):
    # every debug call of Faust and aiokafka then builds a LogRecord that the handler drops,
    # about 12 % of a busy worker's CPU (py-spy, bench/README.md). A service needs no spinner.
    worker.spinner = None
    worker.execute_from_commandline()  # exits the process (sys.exit) when the worker stops
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO)
    try:
        return run_worker(StreamConfig.from_env())
    except WorkerCannotStart as exc:
        print(f"worker: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
