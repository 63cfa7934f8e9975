"""EXPERIMENT (issue 23 item 7): the pipeline on Apache Kafka at least once against exactly once.

One Apache Kafka node, one generated file published once; then 1-worker pipeline runs, the two
guarantees alternated (``--rounds`` pairs), each on empty internal topics, its own consumer group
and a fresh PostgreSQL database; rates as bench_pipeline.py's (c), from the first input read to
the ledger accounting for every input. Run: ``python bench/bench_guarantee.py [--events N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_pipeline import run_pipeline  # noqa: E402
from bench.common import fresh_database, in_run_directory  # noqa: E402
from bench.pipeline_support import delete_non_input_topics, generated_events  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--enterprises", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pg-url", default=None, help="PostgreSQL server (default: a private cluster started here)")
    args = parser.parse_args(argv)
    if args.pg_url:
        return in_run_directory("bench-guarantee-", lambda workdir: bench(args, workdir))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from private_postgres import PrivatePostgres, find_bin_dir

    server = PrivatePostgres(find_bin_dir()).init()
    try:
        server.start()
        args.pg_url = server.url
        return in_run_directory("bench-guarantee-", lambda workdir: bench(args, workdir))
    finally:
        server.remove()


def bench(args, workdir: Path) -> int:
    from streams.apache_kafka import ApacheKafka
    from streams.publish import publish_file
    from streams.verify import expected_from_file

    events = workdir / "events.jsonl"
    generated_events(events, args.events, args.seed, args.enterprises)
    expected = expected_from_file(str(events))
    results = []
    with ApacheKafka(workdir=workdir / "kafka") as kafka:
        from streams.topics import ensure_topics, expected_topics

        ensure_topics(kafka.bootstrap, expected_topics("bench", 4))
        n = publish_file(str(events), kafka.bootstrap)
        print(f"published {n} inputs to Apache Kafka at {kafka.bootstrap}", file=sys.stderr, flush=True)
        for round_ in range(args.rounds):
            for guarantee in ("at_least_once", "exactly_once"):
                delete_non_input_topics(kafka.bootstrap)
                os.environ["SUBSIDY_PROCESSING_GUARANTEE"] = guarantee
                with fresh_database(args.pg_url, prefix="bench_guarantee") as url:
                    run = run_pipeline(kafka.bootstrap, url, expected, 1, workdir, kafka="apache",
                                       app_id=f"bench-{guarantee.replace('_', '-')}-{round_}")
                run["guarantee"] = guarantee
                results.append(run)
                print(f"{guarantee:14} {run['events_per_s']:8,.0f} inputs/s  ({run['seconds']:.1f} s, wall {run['wall_s']:.1f} s, "
                      f"{run['cpu_us_per_input']:.0f} µs CPU/input, ledger = replay: {run['ledger_equals_replay']})",
                      file=sys.stderr, flush=True)
    rate = {g: [r["events_per_s"] for r in results if r["guarantee"] == g] for g in ("at_least_once", "exactly_once")}
    ratio = sum(rate["exactly_once"]) / sum(rate["at_least_once"])
    print(json.dumps({"inputs": n, "runs": results, "exactly_once_over_at_least_once": round(ratio, 3)}, indent=1))
    return 0 if all(r["ledger_equals_replay"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
