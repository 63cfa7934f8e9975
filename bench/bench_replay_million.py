"""A year replay of 1,000,000 events: time and peak memory of ``subsidy replay`` into SQLite and PostgreSQL.

Generates the events once (``subsidy generate --events N``; the file is kept in --workdir for
reruns), then runs ``subsidy replay FILE --ledger URL --json`` as a child process per ledger:
SQLite (a new file) and PostgreSQL (a fresh database on the local server). Peak memory is the
child's own ``ru_maxrss`` (``os.wait4``). A probe of --probe events runs first per ledger; if
it predicts more than --budget seconds for the full N, the full run is skipped and the probe's
rate is reported instead (said so in the output).

Run: ``python bench/bench_replay_million.py [--events 1000000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PG_URL_HELP, emit, environment, fresh_database, in_run_directory, run_with_postgres  # noqa: E402

SUBSIDY = [sys.executable, "-m", "subsidy.cli"] if not (Path(sys.executable).parent / "subsidy").exists() else [str(Path(sys.executable).parent / "subsidy")]


def run_child(cmd: list[str]) -> dict:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = b"", b""
    # read pipes without waiting on the process (wait4 must reap it to get its rusage)
    import threading

    chunks: dict[str, bytes] = {}

    def drain(name, stream):
        chunks[name] = stream.read()

    threads = [threading.Thread(target=drain, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for t in threads:
        t.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = chunks.get("out", b""), chunks.get("err", b"")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    # CPU time besides wall time: on a shared machine the wall time is mostly the others' load
    return {"seconds": round(seconds, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "stdout": out.decode(errors="replace")}


def head(path: Path, lines: int, out: Path) -> int:
    n = 0
    with open(path, "rb") as src, open(out, "wb") as dst:
        for line in src:
            if n >= lines:
                break
            dst.write(line)
            n += 1
    return n


def replay(events: Path, ledger_url: str, n: int) -> dict:
    r = run_child(SUBSIDY + ["replay", str(events), "--ledger", ledger_url, "--json"])
    try:
        summary = json.loads(r["stdout"].strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        summary = {}
    return {"events": n, "seconds": r["seconds"], "events_per_s": round(n / r["seconds"]), "peak_rss_mib": r["peak_rss_mib"],
            "rejected": summary.get("rejected")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--probe", type=int, default=50_000, help="events of the first, predicting run per ledger")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds a full run may take (default 15 min)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", default=None, help="keep the generated events here for reruns (default: a temporary directory, removed after a run that passed)")
    parser.add_argument("--pg-url", default=None, help=PG_URL_HELP)
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.only == "sqlite":
        log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
        return in_run_directory("bench-replay-", lambda workdir: bench_replay(args, log, workdir), given=args.workdir)
    return run_with_postgres(args, "bench-replay-", lambda workdir, log: bench_replay(args, log, workdir), given=args.workdir)


def bench_replay(args: argparse.Namespace, log, workdir: Path) -> int:
    events = workdir / f"events-{args.events}-{args.seed}.jsonl"
    generate = None
    if not events.exists():
        enterprises = max(1100, args.events // 55)
        generate = run_child(SUBSIDY + ["generate", "--year", "2026", "--events", str(args.events), "--seed", str(args.seed),
                                        "--enterprises", str(enterprises), "--out", str(events)])
        log(f"generated {args.events:,} events in {generate['seconds']} s (peak {generate['peak_rss_mib']} MiB)")
    with open(events, "rb") as f:
        n = sum(1 for _ in f)
    probe_file = workdir / f"probe-{args.probe}.jsonl"
    probe_n = head(events, args.probe, probe_file)

    results: dict = {}
    for backend in ("sqlite", "postgresql"):
        if args.only and backend != args.only:
            continue
        entry: dict = {}
        for label, path, count in (("probe", probe_file, probe_n), ("full", events, n)):
            if label == "full":
                predicted = count / entry["probe"]["events_per_s"]
                entry["predicted_full_s"] = round(predicted)
                if predicted > args.budget:
                    entry["full"] = None
                    entry["note"] = f"full run skipped: predicted {predicted:,.0f} s > budget {args.budget:,.0f} s; the probe rate is the figure"
                    log(f"{backend}: {entry['note']}")
                    continue
            if backend == "sqlite":
                db = workdir / f"{backend}-{label}.sqlite"
                db.unlink(missing_ok=True)
                entry[label] = replay(path, f"sqlite:///{db}", count)
            else:
                with fresh_database(args.pg_url, prefix="bench_replay") as url:
                    entry[label] = replay(path, url, count)
            log(f"{backend} {label}: {count:,} events in {entry[label]['seconds']} s = {entry[label]['events_per_s']:,}/s, peak {entry[label]['peak_rss_mib']} MiB")
        results[backend] = entry

    result = {"benchmark": "replay-million", "events": n, "generate": {k: v for k, v in (generate or {}).items() if k != "stdout"} or None,
              "replay": results, "environment": environment(args.pg_url if args.only != "sqlite" else None)}
    lines = [f"{n:,} generated events ({events})"]
    for backend, entry in results.items():
        full = entry.get("full")
        if full:
            lines.append(f"{backend:<10} full: {full['seconds']:,.1f} s ({full['events_per_s']:,}/s), peak RSS {full['peak_rss_mib']} MiB")
        else:
            p = entry["probe"]
            lines.append(f"{backend:<10} {entry.get('note')}: probe {p['events']:,} in {p['seconds']} s ({p['events_per_s']:,}/s), peak {p['peak_rss_mib']} MiB")
    emit(result, args.json, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
