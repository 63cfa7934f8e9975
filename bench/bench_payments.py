"""Payment file export: a batch of ``--n`` payments to pain.001.001.09, XSD validation kept, against
the ledger's existing pain.001 export of the same payments, in the same run.

The payments come from the real core (a generated year through intake and the engine, as
bench/bench_ledger.py takes them): the first instructions until ``--n`` payments are in, clawbacks
included, booked into a fresh ledger (SQLite in a temporary folder, or ``--ledger URL``); every
payee then gets a verified account, one batch takes every payment and is approved. Then, timed,
each as the command a finance officer types (``subsidy.cli.main``, so with its GC settings):

(a) baseline: ``subsidy ledger export --format pain001`` of the whole ledger: the same payments,
    built and validated element by element by xmlschema from the shipped XSD;
(b) ``subsidy payments export BATCH --format pain001``: the batch read with one query, the
    document templated as text and validated whole by libxml2 against the same XSD, the batch
    marked sent (``--repeat`` runs: the first marks it sent, the others export it again).

Prints wall-clock and CPU seconds, payments/s and (a)/(b) as a speed-up; the goal is (b) under
5 s for 50,000.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python bench/bench_payments.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_ledger import core_output
from bench.common import PG_URL_HELP, Timer, emit, environment, fresh_database, postgres_server
from rules.policy import load_policy
from rules.records import Decision, Instruction
from sinks.export import PAIN001_NS, pain001_lxml_schema
from sinks.ledger import Ledger, ledger_url
from subsidy.cli import main as subsidy
from subsidy.runtime import tune_gc

GOAL_SECONDS = 5.0
CREATED_AT = "2027-01-05T09:00:00+08:00"


def payments_and_their_clawbacks(n: int) -> tuple[list[Decision], list[Instruction]]:
    """The core's first instructions until ``n`` payments are in, and their decisions."""
    decisions, instructions = core_output(int(n * 1.15) + 100)
    kept, payments = [], 0
    for instruction in instructions:
        if instruction.kind == "payment":
            if payments == n:
                break
            payments += 1
        kept.append(instruction)
    if payments < n:
        raise SystemExit(f"the generated year paid {payments} payments, fewer than {n}")
    wanted = {i.instruction_id for i in kept}
    return [d for d in decisions if d.instruction_id in wanted], kept


def run_command(argv: list[str]) -> tuple[float, float]:
    """(wall-clock, CPU) seconds the command took (CPU: this process's, which the shared machine's
    load does not inflate); its summary line on stderr is kept out of the benchmark's output."""
    cpu = time.process_time()
    with Timer() as timer, contextlib.redirect_stderr(io.StringIO()) as err:
        status = subsidy(argv)
    if status != 0:
        raise SystemExit(f"`subsidy {' '.join(argv)}` failed: {err.getvalue().strip()}")
    return timer.seconds, time.process_time() - cpu


def transactions(path: Path) -> int:
    """The transactions of a pain.001 file, once it is checked valid against the XSD."""
    from lxml import etree

    document = etree.parse(str(path), etree.XMLParser(huge_tree=True))
    pain001_lxml_schema().assertValid(document)
    return len(document.findall(".//{%s}CdtTrfTxInf" % PAIN001_NS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="payments in the batch (default 50000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (b) (default 3; the first marks the batch sent)")
    parser.add_argument("--ledger", metavar="URL", help="an empty ledger database to fill (default SQLite in a temporary folder)")
    parser.add_argument("--postgresql", action="store_true", help=f"the ledger in a fresh PostgreSQL database: {PG_URL_HELP}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tune_gc()
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-payments-"))
        if args.postgresql:
            url = stack.enter_context(fresh_database(stack.enter_context(postgres_server()), prefix="payments"))
        else:
            url = ledger_url(args.ledger or f"sqlite:///{folder}/ledger.sqlite")
        decisions, instructions = payments_and_their_clawbacks(args.n)
        with Ledger.open(url, timezone=load_policy().timezone) as ledger:
            for start in range(0, len(instructions), 5000):
                chunk = instructions[start:start + 5000]
                ids = {i.instruction_id for i in chunk}
                ledger.record([d for d in decisions if d.instruction_id in ids], chunk, [])
            payees = sorted({i.payee.id for i in instructions})
            ledger.import_payee_accounts([{"source": "bench", "event_id": f"acct-{n}", "payee_id": payee, "account_name": f"收款人{n}",
                                           "account_number": f"62220210{n:011d}", "bank_code": "102651020012",
                                           "verified_at": "2026-01-01T00:00:00+00:00", "revoked": False} for n, payee in enumerate(payees)])
            proposal = ledger.propose_batch("maker")
            for checker in ("checker", "second checker")[:proposal.approvals_required]:
                ledger.approve_batch(proposal.batch_id, checker)
        baseline_file, new_file = Path(folder) / "ledger-export.xml", Path(folder) / "batch.xml"
        baseline, baseline_cpu = run_command(["ledger", "export", "--format", "pain001", "--ledger", url, "--out", str(baseline_file), "--created-at", CREATED_AT])
        timed = [run_command(["payments", "export", proposal.batch_id, "--format", "pain001", "--ledger", url, "--out", str(new_file),
                             "--created-at", CREATED_AT, "--as", "bench"]) for _ in range(args.repeat)]
        counted = (transactions(baseline_file), transactions(new_file))
        if counted != (args.n, args.n) or proposal.number_of_transactions != args.n:
            raise SystemExit(f"the exports hold {counted} transactions, the batch {proposal.number_of_transactions}, not {args.n} each")
        sizes = (baseline_file.stat().st_size, new_file.stat().st_size)
    runs = [wall for wall, _ in timed]
    best = min(runs)
    result = {
        "payments": args.n, "clawbacks_in_ledger": len(instructions) - args.n, "payees": len(payees), "ledger": url.split(":")[0],
        "baseline_ledger_export_s": round(baseline, 2), "batch_export_s": [round(s, 2) for s in runs],
        "baseline_cpu_s": round(baseline_cpu, 2), "batch_export_cpu_s": [round(c, 2) for _, c in timed],
        "speedup_best": round(baseline / best, 1), "payments_per_s_best": round(args.n / best), "goal_met": best < GOAL_SECONDS,
        "file_bytes": {"baseline": sizes[0], "batch": sizes[1]}, "environment": environment(),
    }
    emit(result, args.json, [
        f"{args.n:,} payments of {len(payees):,} payees ({result['clawbacks_in_ledger']:,} clawbacks in the ledger, never in the batch), {result['ledger']}",
        f"(a) subsidy ledger export --format pain001   {baseline:8.2f} s  ({args.n / baseline:,.0f} payments/s), CPU {baseline_cpu:.2f} s",
        f"(b) subsidy payments export --format pain001 {', '.join(f'{s:.2f}' for s in runs)} s (first marks the batch sent), "
        f"CPU {', '.join(f'{c:.2f}' for _, c in timed)} s",
        f"(b) best is {baseline / best:.1f}x the baseline; goal under {GOAL_SECONDS:.0f} s: {'met' if best < GOAL_SECONDS else 'NOT met'}",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
