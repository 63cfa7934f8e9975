"""Soak: twice the expected peak held for minutes through `subsidy up`-style workers, with kill -9.

* the expected peak comes from a generated year (default 60,000 events, ``subsidy generate``):
  its busiest hour (by ``occurred_at``) × a burst factor (default 60: an upstream system that
  exports an hour of events as one batch, delivered within a minute). The soak holds
  ``2 × peak`` unless ``--rate`` says otherwise; the computation is printed;
* a local tansu broker (or ``--broker HOST:PORT``, a real Kafka, e.g. to restart it during the
  run yourself: tansu keeps everything in memory and loses it on restart), a fresh PostgreSQL
  ledger (on ``--pg-url``, else a private cluster: bench/common.py ``postgres_server``),
  ``--workers`` worker processes (streams.local.LocalPipeline, as ``subsidy up``);
* inputs published at a steady rate with aiokafka for ``--minutes`` (default 5); worker RSS
  sampled every 10 s; ``--kills`` (default 2) random workers killed with SIGKILL at random
  moments and restarted;
* pass = memory flat (for every worker that lived at least 3 minutes: mean RSS of the last
  minute of its life within ``--tolerance`` (10 %) of its second minute's) and the ledger equals the replay of the
  published events to the fen, with every input accounted for.

Run: ``make soak`` or ``python bench/soak.py [--minutes 5] [--rate R] [--broker HOST:PORT] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_latency import publish_steady  # noqa: E402
from bench.common import PG_URL_HELP, emit, environment, fresh_database, run_with_postgres  # noqa: E402
from bench.pipeline_support import rss_kib  # noqa: E402


def expected_peak(path: Path, burst: float) -> dict:
    per_hour: collections.Counter = collections.Counter()
    days: set = set()
    total = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            envelope = json.loads(line)
            value = envelope.get("value")
            if not isinstance(value, dict) or not isinstance(value.get("occurred_at"), str):
                continue
            try:
                at = dt.datetime.fromisoformat(value["occurred_at"])
            except ValueError:
                continue
            per_hour[at.strftime("%Y-%m-%dT%H")] += 1
            days.add(at.date())
            total += 1
    hour, busiest = per_hour.most_common(1)[0]
    working_hours = 250 * 9
    return {"year_events": total, "mean_per_working_hour": round(total / working_hours, 1), "busiest_hour": hour,
            "busiest_hour_events": busiest, "burst_factor": burst, "peak_per_s": round(busiest / 3600 * burst, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=None, help="events/s (default: 2 × the expected peak)")
    parser.add_argument("--burst", type=float, default=60.0, help="burst factor over the busiest hour's rate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=2, help="random kill -9 of a worker during the run")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--broker", default=None, help="an existing Kafka (HOST:PORT); default: start a local tansu")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--pg-url", default=None, help=PG_URL_HELP)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return run_with_postgres(args, "soak-", lambda workdir, log: soak(args, log, workdir))


def soak(args: argparse.Namespace, log, workdir: Path) -> int:
    from sinks.ledger import Ledger
    from streams.local import LocalPipeline
    from streams.tools.publish import iter_messages
    from streams.tools.verify import (
        accounted,
        compare_totals,
        expected_from_file,
        ledger_totals,
        state_differs_from_changelog,
        totals_table,
        wait_until_accounted,
    )
    from subsidy.generate import generate_file

    rng = random.Random(args.seed)
    year = workdir / "year.jsonl"
    generate_file(year, 2026, seed=args.seed)
    peak = expected_peak(year, args.burst)
    rate = args.rate or 2 * peak["peak_per_s"]
    duration = args.minutes * 60
    needed = int(rate * duration)
    log(f"expected peak: busiest hour of a generated year {peak['busiest_hour_events']} events ({peak['busiest_hour']}) "
        f"/ 3600 s × burst {args.burst:g} = {peak['peak_per_s']}/s; soak rate {rate:,.2f}/s for {duration:.0f} s = {needed:,} events")
    events = workdir / "events.jsonl"
    source = year
    if needed > peak["year_events"]:
        source = workdir / "big.jsonl"
        generate_file(source, 2026, seed=args.seed, events=int(needed * 1.1), enterprises=max(1100, needed // 55))
    with open(source, "rb") as src, open(events, "wb") as dst:
        for i, line in enumerate(src):
            if i >= needed:
                break
            dst.write(line)
    expected = expected_from_file(str(events))
    with open(events, "rb") as f:
        messages = [(t, k, r, None) for t, k, r in iter_messages(f)]

    broker = None
    if not args.broker:
        from streams.tansu.broker import LocalBroker

        broker = LocalBroker(log_path=workdir / "broker.log").start()
    bootstrap = args.broker or broker.bootstrap
    samples: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
    kills: list[dict] = []
    try:
        with fresh_database(args.pg_url, prefix="soak") as url:
            pipeline = LocalPipeline(workers=args.workers, ledger_url=url, bootstrap=bootstrap, workdir=workdir / "run",
                                     app_id="subsidy-soak", loglevel="warning")
            pipeline.start()
            try:
                pipeline.wait_ready(timeout=90)
                time.sleep(6)
                box: dict = {}
                publisher = threading.Thread(target=lambda: box.update(r=asyncio.run(publish_steady(bootstrap, messages, rate))), daemon=True)
                t0 = time.monotonic()
                publisher.start()
                kill_at = sorted(rng.uniform(60, max(61, duration - 60)) for _ in range(args.kills))
                next_sample = 0.0
                while publisher.is_alive():
                    now = time.monotonic() - t0
                    if now >= next_sample:
                        for w in pipeline.workers:
                            if w.alive():
                                samples[w.pid].append((round(now, 1), rss_kib(w.pid)[0]))
                        next_sample += 10
                    if kill_at and now >= kill_at[0]:
                        kill_at.pop(0)
                        victim = rng.choice(pipeline.workers)
                        pipeline.kill_worker(victim)
                        fresh = pipeline.start_worker(state_of=victim)  # on its RocksDB state, as from a volume
                        kills.append({"at_s": round(now, 1), "killed_pid": victim.pid, "new_pid": fresh.pid})
                        log(f"{now:6.1f} s: kill -9 worker pid {victim.pid}; started pid {fresh.pid} on its state")
                    for line in pipeline.restart_halted():
                        log(f"{now:6.1f} s: {line}")
                    for w in pipeline.dead_workers():
                        raise SystemExit(f"worker {w.index} died on its own ({w.proc.returncode}):\n{pipeline.log_tail(w)}")
                    time.sleep(0.2)
                publish_s = box.get("r", (None, 0))[1]
                log(f"published {len(messages):,} in {publish_s:.1f} s; waiting for the ledger")
                with Ledger.open(url) as ledger:
                    complete = wait_until_accounted(ledger, expected, timeout=600, settle=1.0)
                    actual = ledger_totals(ledger)
                    problems = compare_totals(expected.totals, actual)
                    counts = ledger.counts()
                    done = accounted(ledger, expected)
                    if problems:
                        log(totals_table(expected.totals, actual))
                for worker in list(pipeline.workers):
                    pipeline.stop_worker(worker)
                state_problems = state_differs_from_changelog(pipeline, bootstrap)
                for problem in state_problems:
                    log(f"state differs from the changelog: {problem}")
            finally:
                pipeline.stop()
    finally:
        if broker is not None:
            broker.stop()

    flat: dict[str, dict] = {}
    for pid, series in samples.items():
        # Each worker against its own life: a restarted worker's first minute is its restore.
        born, died = series[0][0], series[-1][0]
        if died - born < 170:
            continue  # too short a life to tell growth from start-up
        second = [r for t, r in series if born + 60 <= t < born + 120]
        last = [r for t, r in series if t >= died - 60]
        if second and last:
            a, b = sum(second) / len(second), sum(last) / len(last)
            flat[str(pid)] = {"second_minute_mib": round(a / 1024, 1), "last_minute_mib": round(b / 1024, 1),
                              "change": round(b / a - 1, 3), "flat": abs(b / a - 1) <= args.tolerance}
    memory_flat = bool(flat) and all(v["flat"] for v in flat.values())
    equal = complete and not problems
    state_equals_changelog = not state_problems
    result = {
        "benchmark": "soak", "peak": peak, "rate_per_s": round(rate, 2), "seconds": duration, "inputs": len(messages),
        "published_in_s": round(publish_s, 1), "workers": args.workers, "broker": "external " + args.broker if args.broker else "local tansu",
        "kills": kills, "rss_samples_kib": {str(k): v for k, v in samples.items()}, "memory": flat, "memory_flat": memory_flat,
        "ledger_complete": complete, "accounted": list(done), "ledger_counts": counts, "ledger_equals_replay": equal,
        "state_equals_changelog": state_equals_changelog, "passed": memory_flat and equal and state_equals_changelog, "environment": environment(args.pg_url),
    }
    lines = [
        f"soak: {len(messages):,} inputs at {rate:,.2f}/s for {duration:.0f} s, {args.workers} workers, {len(kills)} kill -9",
        f"expected peak {peak['peak_per_s']}/s (busiest hour {peak['busiest_hour_events']} events × burst {args.burst:g} / 3600 s); soak at {rate / peak['peak_per_s']:.1f} × peak",
    ]
    for pid, v in flat.items():
        lines.append(f"worker {pid}: RSS 2nd minute {v['second_minute_mib']} MiB, last minute {v['last_minute_mib']} MiB ({v['change']:+.1%}) {'flat' if v['flat'] else 'GROWING'}")
    if not flat:
        lines.append("memory: not measured, no worker lived 3 minutes (run with --minutes 4 or more, or fewer --kills)")
    lines.append(f"ledger complete: {complete}; equals replay to the fen: {equal}; memory flat: {memory_flat}; "
                 f"workers' state equals the changelog: {state_equals_changelog}")
    lines.append("PASS" if result["passed"] else "FAIL")
    emit(result, args.json, lines)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
