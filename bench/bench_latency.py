"""Latency: an input published → its ledger rows, p50/p99 at a steady rate (goal: p99 under 1 s).

On each broker of ``--kafka`` (default both: the embedded tansu, then Apache Kafka 4, production's
broker, one node), back to back in one run: one pipeline worker (streams.local.LocalPipeline; on
Apache Kafka production's worker, ``python -m streams.worker``), a fresh PostgreSQL ledger
(``--pg-url``, else ``$SUBSIDY_BENCH_PG_URL``, else a private cluster). A generated year is published with aiokafka at a steady rate (default 1,000 events/s
for 60 s, in ticks of 10 ms); the publish time of each input is remembered by its event id.
The ledger's ``recorded_at`` column (set by the ledger in the transaction that writes the row,
same machine clock) gives when its decisions were booked; an input's latency is its latest
decision's ``recorded_at`` minus its publish time. Rejected (malformed) inputs carry no event
id and are not timed. After the run the ledger is compared with the replay to the fen.

Run: ``python bench/bench_latency.py [--rate 1000] [--seconds 60] [--kafka tansu|apache|both] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PG_URL_HELP, emit, environment, fresh_database, run_with_postgres  # noqa: E402
from bench.pipeline_support import KAFKA_HELP, Broker, generated_events, kafka_argument, rss_kib, wait_group_settled  # noqa: E402

GOAL_P99_S = 1.0


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(q / 100 * len(values) + 0.5)) - 1))
    return values[k]


async def publish_steady(bootstrap: str, messages: list, rate: float) -> tuple[dict[str, float], float]:
    """Send ``messages`` [(topic, key, raw, event_id)] at ``rate``/s; returns event_id -> publish time."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    sent: dict[str, float] = {}
    tick = 0.01
    per_tick = rate * tick
    started = time.time()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    i = 0
    n = 0
    try:
        while i < len(messages):
            n += 1
            upto = min(len(messages), int(round(n * per_tick)))
            while i < upto:
                topic, key, raw, event_id = messages[i]
                now = time.time()
                await producer.send(topic, raw, key=key)
                if event_id and event_id not in sent:
                    sent[event_id] = now
                i += 1
            delay = t0 + n * tick - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.flush()
    finally:
        await producer.stop()
    return sent, time.time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second (default 1,000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to publish (default 60)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--kafka", type=kafka_argument, default=kafka_argument("both"), metavar="tansu|apache|both", help=KAFKA_HELP)
    parser.add_argument("--pg-url", default=None, help=PG_URL_HELP)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return run_with_postgres(args, "bench-latency-", lambda workdir, log: bench_latency(args, workdir, log))


def latency_on(kind: str, args: argparse.Namespace, workdir: Path, messages: list, expected, log) -> dict:
    """Publish ``messages`` at ``args.rate`` to a pipeline on a fresh broker of ``kind``; the
    latencies of the inputs from the ledger's rows."""
    import sqlalchemy as sa

    from sinks.ledger import Ledger
    from streams.local import LocalPipeline
    from streams.tools.verify import accounted, compare_totals, ledger_totals, wait_until_accounted

    workdir = workdir / kind
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with Broker(kind, workdir) as broker, fresh_database(args.pg_url, prefix="bench_latency") as url:
        pipeline = LocalPipeline(workers=args.workers, ledger_url=url, bootstrap=broker.bootstrap, kafka=kind, workdir=workdir / "run",
                                 app_id="bench-latency", loglevel="warning")
        pipeline.start()
        try:
            # ready = every worker's web server answers and the group has settled; publish only
            # then, so start-up is not counted as latency. Apache Kafka says when the group is
            # Stable with every worker holding partitions (which took longer than a fixed wait
            # under load); tansu cannot describe a group, and its JoinGroup takes session/2 = 3 s
            pipeline.wait_ready(timeout=90)
            settled = wait_group_settled(broker.bootstrap, "bench-latency", args.workers)
            time.sleep(8 if settled is None else 3)
            log(f"[{kind}] publishing {len(messages):,} inputs at {args.rate:,.0f}/s to {broker.name}; load average {load_before} ...")
            sent, publish_s = asyncio.run(publish_steady(broker.bootstrap, messages, args.rate))
            log(f"[{kind}] published in {publish_s:.1f} s ({len(messages) / publish_s:,.0f}/s)")
            with Ledger.open(url) as ledger:
                ok = wait_until_accounted(ledger, expected, timeout=600, settle=0.5)
                problems = compare_totals(expected.totals, ledger_totals(ledger))
                equal = ok and not problems
                progress = accounted(ledger, expected)
            peak = [round(rss_kib(w.pid)[1] / 1024, 1) for w in pipeline.workers]
        finally:
            pipeline.stop()
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT event_id, max(recorded_at) FROM ledger_decisions GROUP BY event_id").all()
        engine.dispose()

    latencies = []
    for event_id, recorded in rows:
        if event_id in sent and recorded:
            latencies.append(dt.datetime.fromisoformat(recorded).timestamp() - sent[event_id])
    p99 = percentile(latencies, 99)
    return {
        "broker": broker.name,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "group_settled_s": round(settled, 1) if settled is not None else None,
        "rate_published_per_s": round(len(messages) / publish_s, 1),
        "timed_inputs": len(latencies),
        "p50_s": round(percentile(latencies, 50), 3),
        "p90_s": round(percentile(latencies, 90), 3),
        "p99_s": round(p99, 3),
        "max_s": round(max(latencies), 3) if latencies else None,
        "goal_met": p99 < GOAL_P99_S,
        "ledger_complete": ok,
        "ledger_equals_replay": equal,
        "differences": problems[:20],
        "accounted": list(progress),
        "peak_rss_mib_per_worker": peak,
    }


def bench_latency(args: argparse.Namespace, workdir: Path, log) -> int:
    from streams.tools.publish import iter_messages
    from streams.tools.verify import expected_from_file

    n = int(args.rate * args.seconds)
    events = workdir / "events.jsonl"
    generated_events(events, n, args.seed, max(200, n // 60))
    lines = events.read_bytes().splitlines(keepends=True)[:n]
    events.write_bytes(b"".join(lines))
    expected = expected_from_file(str(events))
    messages = []
    with open(events, "rb") as f:
        for topic, key, raw in iter_messages(f):
            try:
                event_id = json.loads(raw).get("event_id")
            except Exception:
                event_id = None
            messages.append((topic, key, raw, event_id if isinstance(event_id, str) else None))

    brokers = {kind: latency_on(kind, args, workdir, messages, expected, log) for kind in args.kafka}
    result = {
        "benchmark": "latency",
        "rate_target_per_s": args.rate,
        "inputs": len(messages),
        "workers": args.workers,
        "goal_p99_s": GOAL_P99_S,
        "kafka": list(args.kafka),
        "brokers": brokers,
        "environment": environment(args.pg_url),
    }
    out = [f"{len(messages):,} inputs published at a target {args.rate:,.0f}/s to {args.workers} worker(s), on each broker in turn"]
    for kind, r in brokers.items():
        out.append(f"{kind:>6}: publish → ledger row p50 {r['p50_s']:.3f} s, p90 {r['p90_s']:.3f} s, p99 {r['p99_s']:.3f} s, max {r['max_s']} s "
                   f"({r['timed_inputs']:,} timed, published at {r['rate_published_per_s']:,.0f}/s); goal p99 < {GOAL_P99_S} s: "
                   f"{'met' if r['goal_met'] else 'NOT met'}; ledger = replay: {r['ledger_equals_replay']}; load {r['load_average_before'][0]}")
        out += [f"  differs: {d} (if this budget ran out: arrival order decides who takes room given back; "
                "bench/README.md, \"Explained finding\")" for d in r["differences"]]
    emit(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
