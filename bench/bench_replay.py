"""Replay of N events into PostgreSQL against the same run's bare INSERT of the rows it stored,
with peak memory; and ``subsidy whatif`` of the same file (issue 28, item 4).

1. ``subsidy generate --year 2026 --events N`` (kept in --workdir for reruns);
2. ``subsidy replay FILE --ledger URL --json`` into a fresh database, as a child process: wall
   time and peak RSS (the child's ``ru_maxrss`` through ``os.wait4``);
3. the baseline, in the same run and database: every row the replay stored in the ledger's
   tables (decisions, instructions, rejections, journal, cap usage and charges, accounts,
   exclusion listings and holds) inserted again into bare copies of those tables
   (``CREATE TABLE ... (LIKE ...)``: the columns, no keys, indexes, constraints or triggers) by
   batched ``executemany`` INSERTs, 1,000 rows a batch, one transaction each. Only the INSERTs and
   commits are timed, not reading the rows back. ratio = baseline seconds / replay seconds: the
   share of the replay that inserting its rows alone takes;
4. ``subsidy whatif FILE --policy NEW --json``, NEW the shipped policy with the compute-voucher
   rate 0.60 -> 0.50: wall time and peak RSS.

Run: ``python bench/bench_replay.py [--events 200000] [--pg-url URL] [--workdir DIR] [--json]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_replay_million import SUBSIDY, run_child  # noqa: E402
from bench.common import PG_URL_HELP, emit, environment, fresh_database, run_with_postgres  # noqa: E402
from rules.policy import DEFAULT_POLICY_PATH  # noqa: E402

LEDGER_TABLES = ("ledger_accounts", "ledger_decisions", "ledger_instructions", "ledger_rejections", "ledger_journal", "ledger_cap_usage", "ledger_cap_charges",
                 "ledger_exclusion_listings", "ledger_holds")
BATCH_ROWS = 1000
RATE_60 = 'value: "0.60", basis: stated, reference: "最高可抵扣不超过60%的算力购买费用"'


def bare_insert_baseline(url: str) -> dict:
    """Insert every stored row again into bare copies of the ledger's tables; time the INSERTs."""
    engine = sa.create_engine(url)
    seconds, rows_total, per_table = 0.0, 0, {}
    try:
        with engine.connect() as reader:
            present = set(sa.inspect(reader).get_table_names())
            for table in LEDGER_TABLES:
                if table not in present:
                    continue
                with engine.begin() as conn:
                    conn.exec_driver_sql(f"CREATE TABLE bare_{table} (LIKE {table})")
                result = reader.execution_options(stream_results=True, yield_per=BATCH_ROWS).exec_driver_sql(f"SELECT * FROM {table}")
                columns = list(result.keys())
                statement = f"INSERT INTO bare_{table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
                count = 0
                for chunk in result.partitions(BATCH_ROWS):
                    rows = [tuple(row) for row in chunk]
                    with engine.connect() as conn:
                        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                        started = time.perf_counter()
                        cursor.executemany(statement, rows)
                        conn.connection.dbapi_connection.commit()  # type: ignore[union-attr]
                        seconds += time.perf_counter() - started
                    count += len(rows)
                per_table[table] = count
                rows_total += count
    finally:
        engine.dispose()
    return {"seconds": round(seconds, 2), "rows": rows_total, "rows_per_table": per_table}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", default=None, help="keep the generated events here for reruns (default: a temporary directory)")
    parser.add_argument("--pg-url", default=None, help=PG_URL_HELP)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return run_with_postgres(args, "bench-replay-", lambda workdir, log: bench(args, log, workdir), given=args.workdir)


def bench(args: argparse.Namespace, log, workdir: Path) -> int:
    events = workdir / f"events-{args.events}-{args.seed}.jsonl"
    if not events.exists():
        enterprises = max(1100, args.events // 55)
        made = run_child(SUBSIDY + ["generate", "--year", "2026", "--events", str(args.events), "--seed", str(args.seed), "--enterprises", str(enterprises), "--out", str(events)])
        log(f"generated {args.events:,} events in {made['seconds']} s")
    with open(events, "rb") as f:
        n = sum(1 for _ in f)
    with fresh_database(args.pg_url, prefix="bench_replay") as url:
        replay = run_child(SUBSIDY + ["replay", str(events), "--ledger", url, "--json"])
        log(f"replay: {n:,} events in {replay['seconds']} s ({n / replay['seconds']:,.0f}/s), peak RSS {replay['peak_rss_mib']} MiB")
        baseline = bare_insert_baseline(url)
        log(f"bare INSERT of its {baseline['rows']:,} rows: {baseline['seconds']} s")
    policy = workdir / "rate-050.yaml"
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    policy.write_text(text.replace(RATE_60, RATE_60.replace('"0.60"', '"0.50"')), encoding="utf-8")
    whatif = run_child(SUBSIDY + ["whatif", str(events), "--policy", str(policy), "--json"])
    log(f"whatif: {whatif['seconds']} s, peak RSS {whatif['peak_rss_mib']} MiB")
    ratio = baseline["seconds"] / replay["seconds"]
    result = {
        "benchmark": "replay", "events": n,
        "replay": {"seconds": replay["seconds"], "cpu_seconds": replay["cpu_seconds"], "events_per_s": round(n / replay["seconds"]), "peak_rss_mib": replay["peak_rss_mib"]},
        "bare_insert": baseline, "ratio_bare_to_replay": round(ratio, 3),
        "whatif": {"seconds": whatif["seconds"], "cpu_seconds": whatif["cpu_seconds"], "peak_rss_mib": whatif["peak_rss_mib"]},
        "load_average": os.getloadavg(),
        "environment": environment(args.pg_url),
    }
    emit(result, args.json, [
        f"{n:,} events ({events})",
        f"replay into PostgreSQL  {replay['seconds']:8.1f} s  {n / replay['seconds']:8,.0f} events/s  CPU {replay['cpu_seconds']} s  peak RSS {replay['peak_rss_mib']} MiB",
        f"bare INSERT, same rows  {baseline['seconds']:8.1f} s  ({baseline['rows']:,} rows)  ratio {ratio:.3f}",
        f"whatif (0.60 -> 0.50)   {whatif['seconds']:8.1f} s  CPU {whatif['cpu_seconds']} s (both sides)  peak RSS {whatif['peak_rss_mib']} MiB",
        f"load average at the end {' '.join(f'{load:.1f}' for load in os.getloadavg())}",
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
