"""`subsidy worker | up | publish | demo | trace` (hooked into subsidy/cli.py).

* ``worker``: production. One Faust worker configured from the environment (SUBSIDY_BROKER,
  SUBSIDY_LEDGER_URL, SUBSIDY_POLICY, SUBSIDY_PARTITIONS, SUBSIDY_APP_ID) or flags; no
  local-broker settings.
* ``up``: everything on this machine: a local Kafka-protocol broker (tansu), the topics,
  N workers (subprocesses, local settings), the SQLite ledger (or ``--ledger URL``).
* ``publish``: send a JSONL file of events to the input topics with kafka-python.
* ``demo``: up + a generated sample + publish + wait until the ledger accounts for every
  input; prints the per-clause-year totals next to the replay's, then stops everything.
* ``trace``: every record of the pipeline's topics that mentions the given ids
  (streams/tools/trace.py), for an incident such as a refused clawback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path


def _command_error(message: str, exit_code: int = 2) -> Exception:
    try:
        from subsidy.cli import CommandError
    except ImportError:  # pragma: no cover
        return SystemExit(f"subsidy: error: {message}")
    return CommandError(message, exit_code)


def _bootstrap(value: str) -> str:
    from streams.config import bootstrap_of

    return bootstrap_of(value)


# -- worker -----------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.config import StreamConfig
    from streams.worker import WorkerCannotStart, run_worker

    try:
        config = StreamConfig.from_env(broker=args.broker, ledger_url=args.ledger, policy_path=args.policy,
                                       partitions=args.partitions, replication=args.replication, web_port=args.web_port)
    except ValueError as exc:
        raise _command_error(str(exc)) from None
    try:
        return run_worker(config, loglevel=args.loglevel, create_topics=not args.no_create_topics)
    except WorkerCannotStart as exc:
        raise _command_error(str(exc), exc.exit_code) from None


# -- up ---------------------------------------------------------------------------------------


def _opened_ledger_url(given: str | None) -> str:
    """The ledger of a local run, opened (its schema made) before anything is started, so that a
    mistyped --ledger costs no broker, no workers and no temporary folder. The workers run in
    their own folder: a relative SQLite path is made absolute, or it would name a file there."""
    from sinks.ledger import Ledger, first_line, ledger_url, parse_ledger_url, shown_url

    url = ledger_url(given)
    try:
        parsed = parse_ledger_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            url = parsed.set(database=str(Path(parsed.database).expanduser().resolve())).render_as_string(hide_password=False)
        Ledger.open(url).close()
    except Exception as exc:  # noqa: BLE001 - the URL's or the database's fault: one line
        raise _command_error(f"cannot open ledger {shown_url(url)}: {first_line(exc)}") from None
    return url


def _start_local(args: argparse.Namespace, workers: int):
    from streams.apache_kafka import KAFKA_VERSION, ApacheKafkaError
    from streams.local import LocalPipeline
    from streams.tansu.broker import LocalBrokerError

    ledger = _opened_ledger_url(args.ledger)
    workdir = Path(args.workdir) if getattr(args, "workdir", None) else Path(tempfile.mkdtemp(prefix="subsidy-up-"))
    pipeline = LocalPipeline(workers=workers, partitions=args.partitions, ledger_url=ledger, workdir=workdir, kafka=args.kafka,
                             policy_path=getattr(args, "policy", None), app_id=getattr(args, "app_id", None) or "subsidy-pipeline")
    if args.kafka == "apache":
        print(f"broker     starting Apache Kafka {KAFKA_VERSION} (a single KRaft node) ...", file=sys.stderr, flush=True)
    try:
        pipeline.start()
    except (LocalBrokerError, ApacheKafkaError) as exc:
        pipeline.stop()
        raise _command_error(str(exc)) from None
    return pipeline


def _broker_line(pipeline) -> str:
    from streams.apache_kafka import KAFKA_VERSION

    if pipeline.kafka == "apache":
        return f"{pipeline.bootstrap}  (Apache Kafka {KAFKA_VERSION}, data and log in {pipeline.workdir / 'kafka'})"
    return f"{pipeline.bootstrap}  (local tansu, in memory; log {pipeline.workdir / 'broker.log'})"


def cmd_up(args: argparse.Namespace) -> int:
    from streams.local import WorkerDied
    from streams.topics import expected_topics

    # `kill`, systemd and docker stop with SIGTERM: stop what we started, as on Ctrl-C
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    pipeline = _start_local(args, args.workers)
    # a folder `up` made for itself goes with a clean stop; its logs stay when something failed
    keep_workdir = bool(args.workdir)
    try:
        try:
            pipeline.wait_ready()
        except WorkerDied as exc:
            raise _command_error(str(exc)) from None
        topics = expected_topics(pipeline.app_id, pipeline.partitions)
        from streams.topics import INTAKE_TOPICS

        print(f"broker     {_broker_line(pipeline)}")
        print(f"workers    {len(pipeline.workers)}: " + ", ".join(f"pid {w.pid} metrics http://127.0.0.1:{w.web_port}/metrics" for w in pipeline.workers))
        print(f"ledger     {pipeline.ledger_url}")
        print("publish to " + ", ".join(f"{t} ({topics[t]} partition{'s' if topics[t] > 1 else ''})" for t in INTAKE_TOPICS))
        print("outputs    disbursement-instructions, subsidy-decisions, subsidy-rejections; "
              "subsidy-dead-letters (records of our own topics that cannot be read)")
        print(f"send a file: subsidy publish EVENTS.jsonl --broker {pipeline.bootstrap}")
        print("Ctrl-C stops the workers and the broker.", flush=True)
        while True:
            for line in pipeline.restart_halted():
                print(f"subsidy: {line}", file=sys.stderr)
                keep_workdir = True
            for worker in pipeline.dead_workers():
                print(f"subsidy: worker {worker.index} (pid {worker.pid}) exited with {worker.proc.returncode}; log {worker.log_path}", file=sys.stderr)
                pipeline.workers.remove(worker)
                keep_workdir = True
            if not pipeline.workers:
                return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("stopping ...", file=sys.stderr)
        return 0
    except BaseException:
        keep_workdir = True
        raise
    finally:
        pipeline.stop()
        if keep_workdir:
            print(f"logs kept in {pipeline.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(pipeline.workdir, ignore_errors=True)


# -- publish ----------------------------------------------------------------------------------


def cmd_publish(args: argparse.Namespace) -> int:
    from streams.tools.publish import BrokerUnreachable, NotAcknowledged, PublishError, publish_file
    from subsidy.progress import Progress

    if not os.path.isfile(args.events):
        raise _command_error(f"events file {args.events!r} does not exist")
    broker = args.broker or os.environ.get("SUBSIDY_BROKER")
    if not broker:
        raise _command_error("say where to publish: --broker HOST:PORT (subsidy up prints it) or SUBSIDY_BROKER")
    bar = Progress(None, "publish", unit="msg")
    if bar.enabled:
        print(f"publish: checking {args.events}, then sending it to {broker} ...", file=sys.stderr, flush=True)
    started = time.monotonic()

    def checked(messages: int) -> None:
        bar.total = messages

    try:
        with bar:
            sent = publish_file(args.events, _bootstrap(broker), progress=bar.update, checked=checked)
    except PublishError as exc:
        raise _command_error(f"{args.events}: {exc}; nothing was sent") from None
    except BrokerUnreachable as exc:
        raise _command_error(f"{exc}: is it running? (`subsidy up` prints its address; check --broker or $SUBSIDY_BROKER); nothing was sent") from None
    except NotAcknowledged as exc:
        raise _command_error(f"{exc}; publishing the whole file again is safe, a repeated event_id never pays twice") from None
    except Exception as exc:  # the broker went away mid-file, or refused a message
        raise _command_error(f"publishing to {broker} stopped after {bar.count:,} messages were queued ({type(exc).__name__}: {exc}); "
                             "some may have arrived: publishing the whole file again is safe, a repeated event_id never pays twice") from None
    seconds = time.monotonic() - started
    print(f"published {sent:,} messages to {broker} in {seconds:.1f} s ({sent / max(seconds, 1e-9):,.0f} msg/s)")
    return 0


# -- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from rules.policy import load_policy
    from sinks.ledger import Ledger, shown_url
    from streams.tools.publish import publish_file
    from streams.tools.verify import cap_problems, compare_totals, expected_from_file, ledger_totals, totals_table, wait_until_accounted
    from subsidy.generate import generate_file
    from subsidy.progress import Progress

    policy = load_policy(args.policy) if args.policy else load_policy()
    if args.ledger:
        args.ledger = _opened_ledger_url(args.ledger)
    workdir = Path(tempfile.mkdtemp(prefix="subsidy-demo-"))
    args.workdir = str(workdir)
    kept = "events, worker logs" + ("" if args.ledger else ", ledger")
    if not args.ledger:
        args.ledger = f"sqlite:///{workdir / 'ledger.sqlite'}"
    events_path = workdir / "events.jsonl"
    try:
        lines = generate_file(events_path, args.year, seed=args.seed, enterprises=args.enterprises, events=args.events, policy=policy)
    except ValueError as exc:  # a year outside the programme, too few events: the user's to fix
        shutil.rmtree(workdir, ignore_errors=True)
        raise _command_error(str(exc)) from None
    print(f"generated  {lines:,} events for {args.year} -> {events_path}")
    expected = expected_from_file(str(events_path), policy)
    print(f"replay     {len(expected.decision_ids):,} decisions, {expected.rejections:,} rejections expected")
    pipeline = _start_local(args, args.workers)
    try:
        print(f"broker     {_broker_line(pipeline)}; {len(pipeline.workers)} worker(s); ledger {pipeline.ledger_url}", flush=True)
        started = time.monotonic()
        sent = publish_file(str(events_path), pipeline.bootstrap)
        print(f"published  {sent:,} messages in {time.monotonic() - started:.1f} s", flush=True)
        ledger = Ledger.open(pipeline.ledger_url)
        bar = Progress(None, "ledger", unit="in")
        first = {}

        def progress(done: int, total: int) -> None:
            bar.total = total
            if done and "t" not in first:
                first["t"] = time.monotonic()
            bar.update(done - bar.count)

        def check() -> None:
            for line in pipeline.restart_halted():
                print(f"\nsubsidy: {line}", file=sys.stderr)
            for worker in pipeline.dead_workers():
                raise _command_error(f"worker {worker.index} exited with {worker.proc.returncode}; log {worker.log_path}:\n{pipeline.log_tail(worker)}")

        with bar:
            ok = wait_until_accounted(ledger, expected, timeout=args.timeout, settle=1.5, on_progress=progress, check=check)
        elapsed = time.monotonic() - started
        if not ok:
            raise _command_error(f"the ledger did not account for every input within {args.timeout:.0f} s (logs in {workdir})")
        processing = time.monotonic() - first.get("t", started)
        actual = ledger_totals(ledger)
        problems = compare_totals(expected.totals, actual) + cap_problems(ledger) + ledger.verify_chain()
        counts = ledger.counts()
        print(f"done       {lines:,} inputs in {elapsed:.1f} s from first publish ({lines / elapsed:,.0f} inputs/s end to end, "
              f"{lines / max(processing, 1e-9):,.0f}/s after the first ledger write)")
        print(f"ledger     {counts['decisions']:,} decisions, {counts['instructions']:,} instructions, {counts['rejections']:,} rejections")
        print("granted (net of clawbacks, CNY):")
        print(totals_table(expected.totals, actual))
        if problems:
            print("RESULT     the pipeline DISAGREES with the replay:\n  " + "\n  ".join(problems))
        else:
            print("RESULT     the pipeline's ledger matches the replay to the fen; no cap exceeded; journal chain intact")
        # the folder outlives the run on purpose: the ledger is there to be looked at
        print(f"kept       {workdir} ({kept}); "
              f"look with `subsidy console --ledger {shown_url(pipeline.ledger_url)}`, remove the folder when done")
        return 1 if problems else 0
    finally:
        pipeline.stop()


# -- trace ----------------------------------------------------------------------------------


def cmd_trace(args: argparse.Namespace) -> int:
    from streams.config import DEFAULT_APP_ID
    from streams.tools.publish import BrokerUnreachable
    from streams.tools.trace import trace

    broker = args.broker or os.environ.get("SUBSIDY_BROKER")
    if not broker:
        raise _command_error("say which broker to read: --broker HOST:PORT (subsidy up prints it) or SUBSIDY_BROKER")
    try:
        lines = trace(_bootstrap(broker), args.ids, args.app_id or os.environ.get("SUBSIDY_APP_ID", DEFAULT_APP_ID))
    except BrokerUnreachable as exc:
        raise _command_error(f"{exc}: is it running? (`subsidy up` prints its address; check --broker or $SUBSIDY_BROKER)") from None
    except Exception as exc:  # kafka errors after the broker answered
        raise _command_error(f"reading {broker} failed: {type(exc).__name__}: {exc}") from None
    print("\n".join(lines))
    return 0


# -- parser -----------------------------------------------------------------------------------


def add_stream_commands(subparsers) -> None:
    worker = subparsers.add_parser("worker", help="run one pipeline worker (production; configured from SUBSIDY_* env)")
    worker.add_argument("--broker", metavar="HOST:PORT", help="Kafka bootstrap (default $SUBSIDY_BROKER)")
    worker.add_argument("--ledger", metavar="URL", help="ledger database URL (default $SUBSIDY_LEDGER_URL or sqlite:///subsidy-ledger.sqlite)")
    worker.add_argument("--policy", metavar="FILE", help="policy file (default $SUBSIDY_POLICY or the shipped one)")
    worker.add_argument("--partitions", type=int, help="partitions of the topics (default $SUBSIDY_PARTITIONS or 4)")
    worker.add_argument("--replication", type=int, help="replicas of the topics it creates (default $SUBSIDY_REPLICATION, else 3 on 3 brokers or more, 1 below)")
    worker.add_argument("--web-port", type=int, help="port of /metrics on 127.0.0.1 (default 6066)")
    worker.add_argument("--loglevel", default="info", help="Faust's log level: debug, info, warning, error (default info)")
    worker.add_argument("--no-create-topics", action="store_true", help="do not create missing topics (they must exist; their settings are still checked)")
    worker.set_defaults(func=cmd_worker)

    def local_flags(p, ledger_default: str):
        p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
        p.add_argument("--ledger", metavar="URL", help=f"ledger database URL (default {ledger_default})")
        p.add_argument("--partitions", type=int, default=4, help="partitions per topic (default 4)")
        p.add_argument("--policy", metavar="FILE", help="policy file (default: the shipped one)")
        p.add_argument("--kafka", choices=("tansu", "apache"), default="tansu",
                       help="the broker: tansu (embedded, in memory; default) or apache (Apache Kafka, production's "
                            "broker, fetched from Maven Central once; needs Java 17 and Maven)")

    up = subparsers.add_parser("up", help="start a local broker, the workers and the ledger on this machine")
    local_flags(up, "$SUBSIDY_LEDGER_URL or sqlite:///subsidy-ledger.sqlite in the current folder")
    up.add_argument("--workdir", metavar="DIR", help="where logs go (default: a new temp dir)")
    up.set_defaults(func=cmd_up)

    pub = subparsers.add_parser("publish", help="send a JSONL file of events to the input topics (as an upstream system would)")
    pub.add_argument("events", metavar="EVENTS.jsonl")
    pub.add_argument("--broker", metavar="HOST:PORT", help="bootstrap address (default $SUBSIDY_BROKER)")
    pub.set_defaults(func=cmd_publish)

    demo = subparsers.add_parser("demo", help="up + a generated sample + publish + compare the ledger with the replay")
    local_flags(demo, "a new SQLite file in the folder the demo keeps")
    demo.add_argument("--events", type=int, default=5000, help="approximate number of events (default 5000)")
    demo.add_argument("--enterprises", type=int, default=200, help="enterprises in the generated sample (default 200)")
    demo.add_argument("--year", type=int, default=2026, help="fiscal year the sample's events fall in (default 2026)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the sample: same seed, same events (default 0)")
    demo.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                      help="how long to wait for the ledger to account for every input before giving up (default 600)")
    demo.set_defaults(func=cmd_demo)

    tr = subparsers.add_parser("trace", help="show every record of the pipeline's topics that mentions these ids (instruction, decision or event)")
    tr.add_argument("ids", nargs="+", metavar="ID")
    tr.add_argument("--broker", metavar="HOST:PORT", help="bootstrap address (default $SUBSIDY_BROKER)")
    tr.add_argument("--app-id", help="the workers' app id, also their consumer group (default $SUBSIDY_APP_ID or subsidy-pipeline)")
    tr.set_defaults(func=cmd_trace)
