"""Pipeline end to end (input topics -> PostgreSQL ledger rows), against two baselines in the same run.

One generated year of N events; on each broker of ``--kafka`` (default both: the embedded tansu,
then Apache Kafka 4, production's broker, one node), back to back in one run, the events are
published once to the input topics before anything is timed. Then, over the same messages on the
same broker, with the Faust settings our workers use on that broker (no tansu shim on Apache
Kafka):

* (a) raw aiokafka: a consumer group reads the input topics and a producer sends every message
  to another topic (batched producer defaults); also the same with ``max_batch_size=1``, the
  producer setting our tansu workers were once forced to (streams/tansu/README.md, restore fix);
* (b) a Faust worker whose agent does nothing (bench/faust_noop_worker.py);
* (b2) a Faust worker with our topology and none of our work (the same file, ``topology`` mode):
  inputs forwarded to a claims topic, each claim a table write and two sends, stage batches as
  ours; so c/b2 is the share of a worker's time left to our own work (decoding, rules, JSON,
  ledger), and b2/b bounds c/b whatever that work costs;
* (b3) the same topology with every output of a stage batch handed to aiokafka as one record
  batch per partition, delivery awaited, instead of Faust's send per message: the bound of a
  redesigned send path;
* (c) our pipeline, 1 worker (streams.local.LocalPipeline, a fresh PostgreSQL database; on Apache
  Kafka production's worker, ``python -m streams.worker``), from the first input read to "the
  ledger accounts for every input" (ledger polled, never broker offsets);
* (d) the same with 2 workers (internal topics deleted and recreated, another fresh database);
* (e), (f) and (g) do not depend on the broker: they run once, on the last broker's (c):
* (e) PostgreSQL alone: every row (c) stored for the N inputs (decisions with their audit bodies,
  instructions, journal, cap usage and charges, accounts, rejections) inserted bare into a fresh
  database of the ledger's schema, one ``executemany`` per table and one transaction per stage
  batch (bench_ledger.py's (a2)): what storing them costs with Kafka, Faust, the rules and JSON
  out of the picture;
* (f) the ledger sink alone: the decisions, instructions and rejections (c) booked, through
  ``Ledger.record`` into a fresh database in the same batches (it writes instruction rows with
  COPY, so it can beat (e)); the pipeline books through this sink, so f/b bounds c/b;
* (g) CPU per input: what the processes of (b), (b3), (c) and (f) spent (every thread, from the
  first input to the last), and our pure per-input work alone (intake, the claim's JSON both
  ways, the engine, the outputs' JSON) run in this process over the same messages. A worker's
  Python runs one thread at a time (the GIL), so a worker carrying our topology cannot go faster
  than one input per (b3's time an input on the GIL + that work), whatever it overlaps: that bounds
  c/b from the CPU alone, and the same with (b)'s bounds any design that reads each input once.

Rates are inputs per second from the first message read to the last one done, so start-up and
group joins are left out (they are reported separately as ``wall_s``). The figures that matter are
the ratios c/a, c/b, c/b2, d/c, e/b, f/b, each against baselines of the same broker. PostgreSQL:
``--pg-url``, else ``$SUBSIDY_BENCH_PG_URL``, else a private cluster started and removed by the run.
Run: ``python bench/bench_pipeline.py [--events N] [--kafka tansu|apache|both] [--no-two] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_ledger import bench_bare_every_row, stored_rows  # noqa: E402
from bench.common import PG_URL_HELP, emit, environment, fresh_database, run_with_postgres  # noqa: E402
from bench.pipeline_support import (  # noqa: E402
    KAFKA_HELP,
    Broker,
    cpu_seconds,
    delete_non_input_topics,
    generated_events,
    kafka_argument,
    rss_kib,
    wait_file,
    worker_metric,
)
from schemas.inputs import INPUT_TOPICS  # noqa: E402
from subsidy.runtime import tune_gc  # noqa: E402

RAW_OUT = "bench-raw-out"
#: the topics of the no-op worker's topology modes (its table's changelog Faust makes itself)
NOOP_TOPICS = {"bench-claims": 4, "bench-decisions": 4, "bench-instructions": 4}
GOAL_RATIO_TO_NOOP = 0.8


async def _raw(bootstrap: str, n: int, group: str, max_batch_size: int | None) -> dict:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(*INPUT_TOPICS, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                                session_timeout_ms=6000, heartbeat_interval_ms=1000)
    kwargs = {"max_batch_size": max_batch_size} if max_batch_size else {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kwargs)
    started = time.time()
    await consumer.start()
    await producer.start()
    count, first = 0, None
    try:
        while count < n:
            got = await consumer.getmany(timeout_ms=1000, max_records=1000)
            for _tp, messages in got.items():
                if first is None:
                    first = time.time()
                for m in messages:
                    await producer.send(RAW_OUT, m.value, key=m.key)  # returns once queued: batched
                count += len(messages)
        await producer.flush()
        last = time.time()
        await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return {"events": count, "seconds": last - first, "events_per_s": count / (last - first), "wall_s": last - started}


def run_raw(bootstrap: str, n: int, group: str, max_batch_size: int | None = None) -> dict:
    return asyncio.run(_raw(bootstrap, n, group, max_batch_size))


def run_noop(bootstrap: str, n: int, workdir: Path, mode: str = "events", timeout: float = 300, kafka: str = "tansu") -> dict:
    out = workdir / f"noop-{mode}.json"
    env = dict(os.environ, BENCH_BROKER=bootstrap, BENCH_KAFKA=kafka, BENCH_TARGET=str(n), BENCH_OUT=str(out), BENCH_MODE=mode,
               BENCH_APP_ID=f"bench-noop-{mode}", BENCH_DATADIR=str(workdir / f"noop-{mode}-data"))
    log = open(workdir / f"noop-{mode}.log", "wb")
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "bench.faust_noop_worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=str(Path(__file__).resolve().parent.parent), start_new_session=True)
    try:
        if not wait_file(str(out), timeout, proc):
            raise SystemExit(f"the no-op Faust worker did not finish (log {workdir / f'noop-{mode}.log'})")
        time.sleep(0.05)
        r = json.loads(out.read_text())
        _rss, hwm = rss_kib(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    seconds = r["last"] - r["first"]
    return {"events": r["count"], "seconds": seconds, "events_per_s": r["count"] / seconds, "wall_s": r["last"] - started,
            "peak_rss_mib": round(hwm / 1024, 1), "mode": mode, **cpu_use(r["cpu"], r["count"], seconds)}


def cpu_use(cpu_s: float, inputs: int, seconds: float) -> dict:
    """CPU seconds spent over a timed span, per input, and as cores kept busy on average."""
    return {"cpu_s": round(cpu_s, 3), "cpu_us_per_input": round(cpu_s / inputs * 1e6, 1), "cores_busy": round(cpu_s / seconds, 2)}


def core_cpu_per_input(events_path: Path) -> dict:
    """(g) our pure per-input work with no Kafka, no Faust and no database, one thread, what the
    stages do: intake, the claim's message encoded and decoded, the engine (its state in a dict),
    every decision and instruction encoded. Part by part over all the messages, so each part's
    share is reported; each part's best of three passes (the engine's with a fresh state)."""
    from bench.bench_rules import claims_of
    from rules.engine import Engine
    from rules.intake import Claim
    from rules.policy import load_policy
    from streams.state import compact_json
    from streams.tools.publish import iter_messages

    policy = load_policy()
    with open(events_path, "rb") as f:
        messages = [(topic, raw) for topic, _key, raw in iter_messages(f)]

    def decide_all(claims: list) -> list:
        engine = Engine(policy, {})
        return [engine.decide(claim) for claim in claims]

    def best_of_three(part):
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            result = part()
            best = min(best, time.process_time() - started)
        return best, result

    seconds = {}
    seconds["intake"], claims = best_of_three(lambda: claims_of(messages, policy))
    seconds["claim_encoded"], encoded = best_of_three(lambda: [compact_json({"claim": claim.to_dict()}) for claim in claims])
    seconds["claim_decoded"], decoded = best_of_three(lambda: [Claim.from_dict(json.loads(body)["claim"]) for body in encoded])
    seconds["engine"], outcomes = best_of_three(lambda: decide_all(decoded))
    seconds["outputs_encoded"], _ = best_of_three(lambda: [compact_json(r.to_wire()) for o in outcomes for r in o.decisions + o.instructions])
    total = sum(seconds.values())
    return {"inputs": len(messages), "cpu_s": round(total, 3), "cpu_us_per_input": round(total / len(messages) * 1e6, 1),
            "parts_us_per_input": {part: round(s / len(messages) * 1e6, 1) for part, s in seconds.items()}}


def run_pipeline(bootstrap: str, ledger_url: str, expected, workers: int, workdir: Path, timeout: float = 900, kafka: str = "tansu") -> dict:
    from sinks.ledger import Ledger
    from streams.local import LocalPipeline
    from streams.tools.verify import accounted, compare_totals, ledger_totals

    n = expected.inputs
    pipeline = LocalPipeline(workers=workers, partitions=4, ledger_url=ledger_url, bootstrap=bootstrap, kafka=kafka,
                             workdir=workdir / f"pipeline-{workers}", app_id=f"bench-pipe-{workers}", loglevel="warning")
    started = time.time()
    pipeline.start()
    first = None
    peak = {}
    cpu_at_first = {w.pid: cpu_seconds(w.pid) for w in pipeline.workers}  # replaced at the first input read
    try:
        with Ledger.open(ledger_url) as ledger:
            deadline = time.monotonic() + timeout
            while True:
                if time.monotonic() > deadline:
                    raise SystemExit(f"pipeline ({workers} workers) did not finish within {timeout}s: {accounted(ledger, expected)}")
                for w in pipeline.workers:
                    if not w.alive():
                        raise SystemExit(f"worker {w.index} died:\n{pipeline.log_tail(w)}")
                    peak[w.pid] = max(peak.get(w.pid, 0), rss_kib(w.pid)[1])
                if first is None:
                    seen = sum(worker_metric(w.web_port, "subsidy_events_in_total") or 0 for w in pipeline.workers)
                    if seen > 0:
                        first = time.time()
                        cpu_at_first = {w.pid: cpu_seconds(w.pid) for w in pipeline.workers}
                done, total = accounted(ledger, expected)
                if done >= total:
                    last = time.time()
                    cpu_s = sum(cpu_seconds(pid) - cpu for pid, cpu in cpu_at_first.items())
                    break
                time.sleep(0.1)
            problems = compare_totals(expected.totals, ledger_totals(ledger))
    finally:
        pipeline.stop()
    first = first or started
    seconds = last - first
    return {"workers": workers, "events": n, "seconds": seconds, "events_per_s": n / seconds,
            "events_per_s_per_worker": n / seconds / workers, "wall_s": last - started,
            "ledger_equals_replay": not problems, "peak_rss_mib_per_worker": [round(v / 1024, 1) for v in peak.values()],
            **cpu_use(cpu_s, n, seconds)}


def run_storage_alone(ledger_url: str, n: int, pg_url: str) -> tuple[dict, dict]:
    """(e) and (f): the outputs (c) booked for n inputs, stored again with nothing else running.

    Both in as many transactions as (c) had stage batches of inputs, in booking order (see
    ``bench_ledger.stored_rows``): (e) the rows, bare; (f) the decision, instruction and rejection
    bodies through ``Ledger.record``, the sink itself."""
    from rules.policy import load_policy
    from sinks.ledger import Ledger
    from streams.config import StreamConfig

    with Ledger.open(ledger_url) as ledger:
        stored = ledger.counts()
    per_batch_instructions = max(1, -(-stored["instructions"] * StreamConfig.stage_batch // n))
    columns, per_batch = stored_rows(ledger_url, per_batch_instructions)
    with fresh_database(pg_url, prefix="bench_pipe_rows") as url:
        bare_s = bench_bare_every_row(url, columns, per_batch)
    rows = sum(len(table_rows) for tables in per_batch for table_rows in tables.values())
    bare = {"events": n, "seconds": bare_s, "events_per_s": n / bare_s, "rows": rows, "transactions": len(per_batch)}

    def bodies(tables: dict, table: str) -> list[dict]:
        body = columns[table].index("body")
        return [json.loads(row[body]) for row in tables[table]]

    work = [(bodies(t, "ledger_decisions"), bodies(t, "ledger_instructions"), bodies(t, "ledger_rejections")) for t in per_batch]
    with fresh_database(pg_url, prefix="bench_pipe_sink") as url, Ledger.open(url, timezone=load_policy().timezone) as ledger:
        with ledger.engine.connect() as conn:  # warm the pool before the clock starts
            conn.exec_driver_sql("SELECT 1")
        started, cpu_started = time.perf_counter(), time.process_time()
        for decisions, instructions, rejections in work:
            ledger.record(decisions, instructions, rejections)
        sink_s, sink_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        booked = ledger.counts()
    assert booked == stored, (booked, stored)
    sink = {"events": n, "seconds": sink_s, "events_per_s": n / sink_s, "transactions": len(work), **cpu_use(sink_cpu_s, n, sink_s)}
    return bare, sink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="generated events (default 20,000)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--enterprises", type=int, default=600)
    parser.add_argument("--kafka", type=kafka_argument, default=kafka_argument("both"), metavar="tansu|apache|both", help=KAFKA_HELP)
    parser.add_argument("--pg-url", default=None, help=PG_URL_HELP)
    parser.add_argument("--no-two", action="store_true", help="skip (d), the 2-worker run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return run_with_postgres(args, "bench-pipeline-", lambda workdir, log: bench_pipeline(args, workdir, log))


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def on_broker(kind: str, args: argparse.Namespace, workdir: Path, events: Path, expected, log, storage: dict | None) -> dict:
    """(a)–(d) on a fresh broker of ``kind``; with ``storage`` (a dict to fill), (e) and (f) on
    this broker's (c) ledger before its database goes."""
    from streams.tools.publish import publish_file

    workdir = workdir / kind
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    with Broker(kind, workdir) as broker:
        bootstrap = broker.bootstrap
        broker.create_topics("bench", 4, {RAW_OUT: 4, **NOOP_TOPICS})
        n = publish_file(str(events), bootstrap)
        log(f"[{kind}] {broker.name} at {bootstrap}: published {n} inputs ({len(expected.decision_ids)} decisions, "
            f"{expected.rejections} rejections expected); load average {load_before}")
        raw = run_raw(bootstrap, n, "bench-raw", None)
        log(f"[{kind}] (a) raw aiokafka: {raw['events_per_s']:,.0f}/s")
        raw1 = run_raw(bootstrap, n, "bench-raw-1", 1)
        log(f"[{kind}] (a1) raw aiokafka, max_batch_size=1: {raw1['events_per_s']:,.0f}/s")
        noop = run_noop(bootstrap, n, workdir, kafka=kind)
        log(f"[{kind}] (b) Faust no-op agent: {noop['events_per_s']:,.0f}/s")
        topology = run_noop(bootstrap, n, workdir, mode="topology", kafka=kind)
        log(f"[{kind}] (b2) Faust with our topology, no work: {topology['events_per_s']:,.0f}/s")
        batched = run_noop(bootstrap, n, workdir, mode="topology-batched", kafka=kind)
        log(f"[{kind}] (b3) the same, outputs sent in batches: {batched['events_per_s']:,.0f}/s")
        with fresh_database(args.pg_url, prefix="bench_pipe") as url:
            one = run_pipeline(bootstrap, url, expected, 1, workdir, kafka=kind)
            log(f"[{kind}] (c) pipeline, 1 worker: {one['events_per_s']:,.0f}/s, c/b = {one['events_per_s'] / noop['events_per_s']:.3f}")
            if storage is not None:
                # (e), (f) and (g) run in this process: with the collector thresholds our workers and
                # every caller of the ledger run with, or the collector's scans of this process's
                # large heap (the expected outcomes) would be billed to our work
                tune_gc()
                storage["rows"], storage["sink"] = run_storage_alone(url, n, args.pg_url)
                log(f"(e) PostgreSQL alone, the same rows bare: {storage['rows']['events_per_s']:,.0f}/s")
                log(f"(f) the ledger sink alone, the same outputs: {storage['sink']['events_per_s']:,.0f}/s")
        two = None
        if not args.no_two:
            delete_non_input_topics(bootstrap)
            with fresh_database(args.pg_url, prefix="bench_pipe") as url:
                two = run_pipeline(bootstrap, url, expected, 2, workdir, kafka=kind)
            log(f"[{kind}] (d) pipeline, 2 workers: {two['events_per_s']:,.0f}/s")
    c = one["events_per_s"]
    return {
        "broker": broker.name,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "raw_aiokafka": raw,
        "raw_aiokafka_batch1": raw1,
        "faust_noop": noop,
        "faust_topology_no_work": topology,
        "faust_topology_no_work_batched_sends": batched,
        "pipeline_1_worker": one,
        "pipeline_2_workers": two,
        "ratio_c_to_raw": round(c / raw["events_per_s"], 3),
        "ratio_c_to_raw_batch1": round(c / raw1["events_per_s"], 3),
        "ratio_c_to_noop": round(c / noop["events_per_s"], 3),
        "ratio_c_to_topology": round(c / topology["events_per_s"], 3),
        "ratio_topology_to_noop": round(topology["events_per_s"] / noop["events_per_s"], 3),
        "ratio_batched_topology_to_noop": round(batched["events_per_s"] / noop["events_per_s"], 3),
        "ratio_d_to_c": round(two["events_per_s"] / c, 3) if two else None,
        "goal_met": c / noop["events_per_s"] >= GOAL_RATIO_TO_NOOP,
    }


def cpu_bounds(section: dict, core: dict, sink: dict) -> dict:
    """From the CPU alone, the fastest one GIL-bound worker could go, ÷ this broker's (b)."""
    noop, batched = section["faust_noop"], section["faust_topology_no_work_batched_sends"]

    def cpu_bound(*us_per_input: float) -> float:
        return round(1e6 / sum(us_per_input) / noop["events_per_s"], 3)

    def serialized(run: dict) -> float:
        # A Faust process keeping more than a core busy ran that excess outside the GIL (other
        # threads' C code, the kernel): only its wall time an input is surely serialized.
        return run["cpu_us_per_input"] / max(1.0, run["cores_busy"])

    return {
        "our_topology": cpu_bound(serialized(batched), core["cpu_us_per_input"]),
        "our_topology_with_sink": cpu_bound(serialized(batched), core["cpu_us_per_input"], sink["cpu_us_per_input"]),
        "one_read_per_input": cpu_bound(serialized(noop), core["cpu_us_per_input"]),
        "one_read_per_input_with_sink": cpu_bound(serialized(noop), core["cpu_us_per_input"], sink["cpu_us_per_input"]),
    }


def broker_lines(kind: str, r: dict, rows: dict, sink: dict, core: dict) -> list[str]:
    noop, topology, batched, one, two = (r["faust_noop"], r["faust_topology_no_work"], r["faust_topology_no_work_batched_sends"],
                                         r["pipeline_1_worker"], r["pipeline_2_workers"])
    bounds = r["cpu_bound_ratio_to_noop"]
    lines = [
        f"[{kind}] broker {r['broker']}; load average {r['load_average_before']} before, {r['load_average_after']} after",
        f"(a)  raw aiokafka consume+produce          {r['raw_aiokafka']['events_per_s']:>9,.0f} ev/s",
        f"(a1) raw aiokafka, producer batch size 1   {r['raw_aiokafka_batch1']['events_per_s']:>9,.0f} ev/s",
        f"(b)  Faust agent doing nothing             {noop['events_per_s']:>9,.0f} ev/s",
        f"(b2) Faust, our topology, no work          {topology['events_per_s']:>9,.0f} ev/s  = {r['ratio_topology_to_noop']} × (b)",
        f"(b3) the same, batched sends               {batched['events_per_s']:>9,.0f} ev/s  = {r['ratio_batched_topology_to_noop']} × (b)",
        f"(c)  pipeline, 1 worker, to ledger rows    {one['events_per_s']:>9,.0f} ev/s  (ledger = replay: {one['ledger_equals_replay']})",
        f"(e)  PostgreSQL alone, (c)'s rows bare      {rows['events_per_s']:>9,.0f} ev/s  = {r['ratio_e_to_noop']} × (b)",
        f"(f)  the ledger sink alone, (c)'s outputs    {sink['events_per_s']:>9,.0f} ev/s  = {r['ratio_f_to_noop']} × (b)",
        f"(g)  CPU an input (µs; cores kept busy): (b) {noop['cpu_us_per_input']:,.1f} ({noop['cores_busy']}), "
        f"(b3) {batched['cpu_us_per_input']:,.1f} ({batched['cores_busy']}), (c) {one['cpu_us_per_input']:,.1f} ({one['cores_busy']}), "
        f"(f) {sink['cpu_us_per_input']:,.1f} ({sink['cores_busy']}); our pure work alone {core['cpu_us_per_input']:,.1f}",
        f"     so, from the CPU alone, c/b <= {bounds['our_topology']} with our topology ({bounds['our_topology_with_sink']} with the sink's CPU), "
        f"<= {bounds['one_read_per_input']} reading each input once ({bounds['one_read_per_input_with_sink']})",
    ]
    if two:
        lines.append(f"(d)  pipeline, 2 workers                   {two['events_per_s']:>9,.0f} ev/s  = {two['events_per_s_per_worker']:,.0f}/worker (ledger = replay: {two['ledger_equals_replay']})")
    lines.append(f"c/a = {r['ratio_c_to_raw']}, c/a1 = {r['ratio_c_to_raw_batch1']}, c/b = {r['ratio_c_to_noop']} (goal >= {GOAL_RATIO_TO_NOOP}: "
                 f"{'met' if r['goal_met'] else 'NOT met'}), c/b2 = {r['ratio_c_to_topology']}" + (f", d/c = {r['ratio_d_to_c']}" if two else ""))
    return lines


def bench_pipeline(args: argparse.Namespace, workdir: Path, log) -> int:
    from streams.tools.verify import expected_from_file

    events = workdir / "events.jsonl"
    generated_events(events, args.events, args.seed, args.enterprises)
    expected = expected_from_file(str(events))
    storage: dict = {}
    brokers: dict[str, dict] = {}
    for i, kind in enumerate(args.kafka):
        brokers[kind] = on_broker(kind, args, workdir, events, expected, log, storage if i == len(args.kafka) - 1 else None)
    rows, sink = storage["rows"], storage["sink"]
    core = core_cpu_per_input(events)
    log(f"(g) our pure per-input work alone: {core['cpu_us_per_input']:,.1f} µs of CPU an input")
    env = environment(args.pg_url)
    n = brokers[args.kafka[-1]]["pipeline_1_worker"]["events"]
    for r in brokers.values():
        noop = r["faust_noop"]["events_per_s"]
        r["ratio_e_to_noop"] = round(rows["events_per_s"] / noop, 3)
        r["ratio_f_to_noop"] = round(sink["events_per_s"] / noop, 3)
        r["cpu_bound_ratio_to_noop"] = cpu_bounds(r, core, sink)
    result = {
        "benchmark": "pipeline-end-to-end",
        "inputs": n,
        "kafka": list(args.kafka),
        "brokers": brokers,
        # broker-independent, measured once on the last broker's (c)
        "postgresql_rows_bare": rows,
        "ledger_sink_alone": sink,
        "pure_work_cpu": core,
        "goal_ratio_to_noop": GOAL_RATIO_TO_NOOP,
        "environment": env,
    }
    lines = [f"inputs: {n:,} (generated year, seed {args.seed}); ledger PostgreSQL {env.get('postgresql')}; {env['cpus']} CPUs; "
             f"(e), (f) on {args.kafka[-1]}'s (c); pure work {core['cpu_us_per_input']:,.1f} µs an input "
             f"({', '.join(f'{part} {us}' for part, us in core['parts_us_per_input'].items())})"]
    for kind, r in brokers.items():
        lines += broker_lines(kind, r, rows, sink, core)
    for kind, r in brokers.items():
        lines.append(f"{kind:>6}: (b) no-op {r['faust_noop']['events_per_s']:,.0f}/s, (c) 1 worker {r['pipeline_1_worker']['events_per_s']:,.0f}/s, "
                     f"c/b = {r['ratio_c_to_noop']}" + (f", (d) 2 workers {r['pipeline_2_workers']['events_per_s']:,.0f}/s" if r["pipeline_2_workers"] else "")
                     + f"; load {r['load_average_before'][0]}")
    emit(result, args.json, lines)
    # a rate from a run whose ledger disagrees with the replay is no figure: keep its logs
    return 0 if all(r["pipeline_1_worker"]["ledger_equals_replay"] and (r["pipeline_2_workers"] is None or r["pipeline_2_workers"]["ledger_equals_replay"])
                    for r in brokers.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
