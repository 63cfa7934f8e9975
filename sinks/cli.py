"""``subsidy ledger init|export|reconcile|verify|keygen|checkpoint|balance|statement|holds|receivables``.

``add_ledger_commands(subparsers)`` registers them on the ``subsidy`` command's subparsers;
each handler returns an exit code (``func`` set with ``set_defaults``) and raises
``subsidy.cli.CommandError`` for mistakes the user can fix.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path

from rules.money import format_fen, parse_amount


def _command_error():
    try:
        from subsidy.cli import CommandError
    except ImportError:  # pragma: no cover - the ledger used without the subsidy command
        return RuntimeError
    return CommandError


def iso_date(text: str) -> str:
    """An argument type: a calendar day written YYYY-MM-DD. The ledger compares value dates as
    text, so a day that does not exist (2026-02-30) would silently select the wrong range."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write YYYY-MM-DD, e.g. 2026-03-31")
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day of the calendar ({error})") from None


def rfc3339_time(text: str) -> str:
    """An argument type: a time with its offset from UTC, as a bank file states it."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time with its offset: write e.g. 2026-05-01T08:00:00+08:00")
    return moment.isoformat()


def _url(args, *, reading: bool = True) -> str:
    """``ledger init`` uses $SUBSIDY_LEDGER_URL (a role that may create roles and tables); the
    reading commands prefer $SUBSIDY_LEDGER_READER_URL, which may only SELECT."""
    from sinks.ledger import ledger_url, reader_ledger_url

    return reader_ledger_url(args.ledger) if reading else ledger_url(args.ledger)


def open_ledger(args, *, create: bool = False):
    """The ledger the command names. Only ``ledger init`` creates one: a reading command pointed
    at a mistyped path would otherwise create an empty ledger there and report 0.00 CNY granted,
    which a finance officer would take for a fact."""
    from sinks.ledger import DEFAULT_LEDGER_URL, Ledger, LedgerError, RetryPolicy, first_line, holds_ledger, shown_url

    url = _url(args, reading=not create)
    try:
        missing = not create and not holds_ledger(url)
        ledger = None if missing else Ledger.open(url, retry=RetryPolicy(attempts=3))
    except (LedgerError, Exception) as error:  # noqa: BLE001 - one line for the user
        raise _command_error()(f"cannot open ledger {shown_url(url)}: {first_line(error)}") from None
    if missing:
        raise _command_error()(f"no ledger at {shown_url(url)}: check --ledger, $SUBSIDY_LEDGER_READER_URL or $SUBSIDY_LEDGER_URL (default {DEFAULT_LEDGER_URL}, "
                               "in the current folder); `subsidy ledger init --ledger URL` creates an empty one")
    return ledger


def _read_lines(path: str):
    if path == "-":
        return sys.stdin.read().splitlines()
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise _command_error()(f"cannot read {path}: {error.strerror}") from None


def _write(path: str | None, data: bytes) -> None:
    if not path or path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(path).write_bytes(data)


# -- handlers ---------------------------------------------------------------------------------


def cmd_init(args) -> int:
    from sinks.ledger import first_line, make_engine, parse_ledger_url, shown_url, upgrade_schema

    url = _url(args, reading=False)
    try:
        on_postgresql = parse_ledger_url(url).get_backend_name() == "postgresql"
    except Exception as error:  # noqa: BLE001 - one line for the user
        raise _command_error()(f"cannot open ledger {shown_url(url)}: {first_line(error)}") from None
    notes = []
    if on_postgresql and not args.no_roles:
        from sinks.ledger.roles import LedgerRoles

        roles = LedgerRoles(args.migrator_role, args.writer_role, args.reader_role)
        engine = make_engine(url)
        try:
            notes = _init_with_roles(engine, roles)
        except Exception as error:  # noqa: BLE001 - one line for the user
            raise _command_error()(f"cannot set up the roles of ledger {shown_url(url)}: {first_line(error)} "
                                   "(`ledger init` creates roles: run it as a superuser, or pass --no-roles)") from None
        finally:
            engine.dispose()
    ledger = open_ledger(args, create=True)
    try:
        revision = upgrade_schema(ledger.engine)
        counts = ledger.counts()
    finally:
        ledger.close()
    print(f"ledger {shown_url(url)} at schema revision {revision}: {counts['decisions']} decisions, {counts['instructions']} instructions, {counts['rejections']} rejections")
    for note in notes:
        print(note)
    return 0


def _init_with_roles(engine, roles) -> list[str]:
    """Create the roles, migrate as the migrator, grant the writer and the reader their part;
    returns what the operator should know (never a password)."""
    from sinks.ledger import upgrade_schema
    from sinks.ledger.roles import create_roles, grant_privileges, password_from_environment, password_variable

    passwords = {job: password_from_environment(job) for job in roles.by_job()}
    with engine.begin() as conn:
        create_roles(conn, roles, passwords)
    upgrade_schema(engine, as_role=roles.migrator)
    with engine.begin() as conn:
        grant_privileges(conn, roles)
    notes = [f"roles: {roles.migrator} owns the tables (migrations), {roles.writer} appends (workers, console actions), "
             f"{roles.reader} reads (console pages, exports)"]
    for job, name in roles.by_job().items():
        if passwords[job] is None:
            notes.append(f"no password given for {name}: it keeps the one it had (none if new); "
                         f"set ${password_variable(job)} or ${password_variable(job)}_FILE and run `ledger init` again")
    return notes


def export_checkpoint(ledger):
    """The checkpoint an export carries (sinks/ledger/checkpoints.py ``current_checkpoint``), or None."""
    from sinks.ledger.checkpoints import CheckpointError, current_checkpoint

    try:
        return current_checkpoint(ledger)
    except CheckpointError as error:
        raise _command_error()(str(error)) from None


def checkpoint_note(checkpoint) -> str:
    """What an export's summary line says of its checkpoint: without one it is written all the same."""
    from sinks.ledger.checkpoints import CHECKPOINTS_ENV, KEY_ENV

    if checkpoint is None:
        return f"; no ledger checkpoint in it: set ${KEY_ENV} (sign the head now) or ${CHECKPOINTS_ENV} (the newest published)"
    return f"; ledger checkpoint at seq {checkpoint.seq}, key {checkpoint.key_id}"


def cmd_export(args) -> int:
    from sinks.export import make_batch, to_csv, to_pain001

    if args.date_from and args.date_to and args.date_from > args.date_to:
        raise _command_error()(f"--from {args.date_from} is after --to {args.date_to}: no day is in that range; swap them")
    ledger = open_ledger(args)
    try:
        dated = ledger.dated_instructions(date_from=args.date_from, date_to=args.date_to)
        checkpoint = export_checkpoint(ledger)
    finally:
        ledger.close()
    instructions = [body for (_, body) in dated]
    if args.format == "csv":
        batch = make_batch(args.format, instructions, args.date_from, args.date_to, {body["instruction_id"]: day for (day, body) in dated})
        data = to_csv(batch, checkpoint).encode("utf-8")
        note = "payments net of clawbacks"
    else:
        # a credit transfer sends money: clawbacks are money to recover, so the two exports' totals differ
        payments = [i for i in instructions if i["kind"] == "payment"]
        if not payments:
            raise _command_error()(f"no payments with a value date in [{args.date_from or '-'}, {args.date_to or '-'}]: nothing to export")
        batch = make_batch(args.format, payments, args.date_from, args.date_to)
        data = to_pain001(batch, created_at=args.created_at, execution_date=args.execution_date or args.date_to, debtor_name=args.debtor_name, debtor_account=args.debtor_account,
                           checkpoint=checkpoint)
        clawbacks = [parse_amount(i["amount"]) for i in instructions if i["kind"] != "payment"]
        note = (f"payments only: {len(clawbacks)} clawback(s) in the range, {format_fen(sum(clawbacks))} CNY, are left out; the CSV export has them"
                if clawbacks else "payments only; no clawbacks in the range")
    _write(args.out, data)
    print(f"batch {batch.batch_id}: {batch.number_of_transactions} transactions, control sum {batch.control_sum} CNY ({note}){checkpoint_note(checkpoint)}", file=sys.stderr)
    return 0


def cmd_reconcile(args) -> int:
    from sinks.reconcile import differences, expected_from_events, expected_from_instructions

    expected = None
    if args.against:
        expected = expected_from_events(_read_lines(args.against), args.policy)
    elif args.against_instructions:
        expected = expected_from_instructions(_read_lines(args.against_instructions))
    ledger = open_ledger(args)
    try:
        problems = differences(ledger, expected)
        counts = ledger.counts()
    finally:
        ledger.close()
    for line in problems:
        print(line)
    against = args.against or args.against_instructions or "the journal itself"
    if problems:
        print(f"reconcile: {len(problems)} difference(s) between the ledger and {against}", file=sys.stderr)
        return 1
    print(f"reconcile: ledger agrees with {against} ({counts['instructions']} instructions, hash chain intact)", file=sys.stderr)
    return 0


def cmd_verify(args) -> int:
    from sinks.ledger.checkpoints import CheckpointError, against_checkpoints, load_public_keys, public_key_paths, read_checkpoints

    try:
        checkpoints = read_checkpoints(args.checkpoints) if args.checkpoints else []
        paths = public_key_paths(args.public_key)
        if checkpoints and not paths:
            raise _command_error()("checkpoints need the public key that checks them: --public-key FILE, $SUBSIDY_CHECKPOINT_PUBLIC_KEY or $SUBSIDY_CHECKPOINT_KEY")
        keys = load_public_keys(paths) if checkpoints else {}
    except CheckpointError as error:
        raise _command_error()(str(error)) from None
    ledger = open_ledger(args)
    try:
        walk = ledger.verify(at={c.seq for c in checkpoints})
    finally:
        ledger.close()
    problems, notes = against_checkpoints(checkpoints, keys, walk.head_seq, walk.at)
    problems = walk.problems + problems
    if args.json:
        print(json.dumps({"verified": not problems, "entries": walk.journal_entries, "chain_seq": walk.head_seq, "head_hash": walk.head_hash,
                          "checkpoints": len(checkpoints), "differences": problems, "notes": notes}, ensure_ascii=False, indent=2))
    else:
        for line in problems + notes:
            print(line)
    if problems:
        print(f"verify: {len(problems)} difference(s); the first: {problems[0]}", file=sys.stderr)
        return 1
    against = f", {len(checkpoints)} checkpoint(s)" if checkpoints else ""
    print(f"verified: {walk.journal_entries} entries, chain head seq {walk.head_seq} {walk.head_hash}{against}", file=sys.stderr)
    return 0


def cmd_keygen(args) -> int:
    from sinks.ledger.checkpoints import CheckpointError, generate_key

    try:
        key = generate_key(args.out)
    except CheckpointError as error:
        raise _command_error()(str(error)) from None
    print(f"key {key}: private {args.out} (give it to the workers as $SUBSIDY_CHECKPOINT_KEY; keep it out of the database's reach), "
          f"public {args.out}.pub (for `subsidy ledger verify --public-key`)")
    return 0


def cmd_checkpoint(args) -> int:
    from sinks.ledger.checkpoints import KEY_ENV, CheckpointError, SigningKey, make_checkpoint

    path = args.key or os.environ.get(KEY_ENV)
    if not path:
        raise _command_error()(f"no checkpoint key: --key FILE or ${KEY_ENV} (`subsidy ledger keygen --out FILE` makes one)")
    try:
        key = SigningKey.load(path)
    except CheckpointError as error:
        raise _command_error()(str(error)) from None
    ledger = open_ledger(args)
    try:
        checkpoint = make_checkpoint(ledger, key)
    finally:
        ledger.close()
    line = checkpoint.to_json() + "\n"
    if args.out and args.out != "-":
        with open(args.out, "a", encoding="utf-8") as out:
            out.write(line)
    else:
        sys.stdout.write(line)
    print(f"checkpoint at seq {checkpoint.seq}: {checkpoint.entries} entries, head {checkpoint.head_hash}", file=sys.stderr)
    return 0


def programme_caps(usage: dict[str, dict], fiscal_year: int | None) -> list[dict]:
    """The programme-wide caps the ledger enforced, scope ``["cap", clause, cap, period]`` (a cap
    per payee or per subject has a longer scope, naming it): limit as applied, used, room left.
    Money as text, counts as numbers."""
    rows = []
    for scope, cap in usage.items():
        parts = json.loads(scope)
        if len(parts) != 4 or parts[0] != "cap" or (fiscal_year and parts[3] not in (str(fiscal_year), "ever")):
            continue
        shown = format_fen if cap["kind"] == "amount" else (lambda n: n)
        rows.append({"clause_id": parts[1], "cap_id": parts[2], "period": parts[3], "kind": cap["kind"],
                     "limit": shown(cap["limit"]), "used": shown(cap["used"]), "room": shown(cap["limit"] - cap["used"])})
    return sorted(rows, key=lambda row: (row["clause_id"], row["period"], row["cap_id"]))


def on_normal_side(balances: dict[str, int]) -> dict[str, int]:
    """Each account's balance on its normal side, as finance reads it: a budget (an expense,
    debit-normal) shows what it granted; a payable (a liability, credit-normal) shows what is owed
    to the payee, positive; a negative payable is owed back. The text and the JSON say the same."""
    return {account: -balance if account.startswith("payable:") else balance for account, balance in balances.items()}


def cmd_balance(args) -> int:
    ledger = open_ledger(args)
    try:
        balances = on_normal_side(ledger.account_balances(args.fiscal_year))
        totals = ledger.granted_totals()
        caps = programme_caps(ledger.cap_usage(), args.fiscal_year)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps({"fiscal_year": args.fiscal_year, "accounts": {k: format_fen(v) for k, v in balances.items()}, "programme_caps": caps},
                         ensure_ascii=False, indent=2))
        return 0
    year = f" for fiscal year {args.fiscal_year}" if args.fiscal_year else ""
    if caps:
        print(f"programme caps{year} (as the ledger enforced them; CNY, or a count of awards):")
        print(f"  {'clause, period, cap':<60} {'limit':>18} {'used':>18} {'room left':>18}")
        for cap in caps:
            print(f"  {cap['clause_id'] + ' ' + cap['period'] + ' ' + cap['cap_id']:<60} {cap['limit']:>18} {cap['used']:>18} {cap['room']:>18}")
    print(f"budget accounts (net granted){year}:")
    for account, balance in balances.items():
        if account.startswith("budget:"):
            print(f"  {account:<60} {format_fen(balance):>18}")
    print("payable accounts (owed to payee):")
    for account, balance in balances.items():
        if account.startswith("payable:"):
            print(f"  {account:<60} {format_fen(balance):>18}")
    recovered = {account: balance for account, balance in balances.items() if account.startswith("receivable:")}
    if recovered:
        print("receivable accounts (minus what offsets recovered of clawbacks, which the payable carries):")
        for account, balance in recovered.items():
            print(f"  {account:<60} {format_fen(balance):>18}")
    grand = sum(v for clause in totals.values() for y, v in clause.items() if not args.fiscal_year or y == args.fiscal_year)
    print(f"total granted{year}: {format_fen(grand)} CNY")
    return 0


def cmd_statement(args) -> int:
    from sinks.ledger import shown_url

    ledger = open_ledger(args)
    try:
        known = ledger.has_payee(args.payee)
        entries = ledger.journal_entries(payee_id=args.payee, fiscal_year=args.fiscal_year) if known else []
    finally:
        ledger.close()
    if not known:  # "0.00 owed" would read as a fact about a payee this ledger never paid
        raise _command_error()(f"no payee {args.payee!r} in ledger {shown_url(_url(args))}: `subsidy ledger balance` lists its payees "
                               "(payable:ID); check the id (a USCC, person or team id)", exit_code=1)
    running = 0
    rows = []
    for entry in entries:
        signed = int(entry["amount_fen"]) if entry["entry_kind"] == "payment" else -int(entry["amount_fen"])
        running += signed
        rows.append({"seq": entry["seq"], "instruction_id": entry["instruction_id"], "kind": entry["entry_kind"], "clause_id": entry["clause_id"], "fiscal_year": entry["fiscal_year"], "amount": format_fen(signed), "balance": format_fen(running)})
    if args.json:
        print(json.dumps({"payee": args.payee, "fiscal_year": args.fiscal_year, "entries": rows, "balance": format_fen(running)}, ensure_ascii=False, indent=2))
        return 0
    print(f"statement of payable:{args.payee} for fiscal year {args.fiscal_year}")
    for row in rows:
        print(f"  {row['seq']:>8} {row['instruction_id']} {row['kind']:<9} {row['clause_id']:<20} {row['amount']:>16} {row['balance']:>16}")
    print(f"balance owed: {format_fen(running)} CNY ({len(rows)} entries)")
    return 0


def cmd_holds(args) -> int:
    ledger = open_ledger(args)
    try:
        holds = ledger.holds(released=args.all)
        held_today = {hold["instruction_id"] for hold in (ledger.holds() if args.all else holds)}  # a release may be for a later day
    finally:
        ledger.close()
    if args.json:
        print(json.dumps({"holds": holds}, ensure_ascii=False, indent=2))
        return 0
    print(f"{'held' if not args.all else 'held and released'} payments (payee listed on payee-exclusions):")
    for hold in holds:
        released = f", payable from {hold['released_on']}" if hold["released_on"] else ""
        print(f"  {hold['instruction_id']} {hold['payee_id']:<20} {hold['clause_id']:<20} {hold['amount']:>16}  "
              f"held from {hold['held_from']} by {hold['list']} {hold['reference']} of {hold['listed_party']}{released}")
    total = sum(parse_amount(hold["amount"]) for hold in holds if hold["instruction_id"] in held_today)
    print(f"held today: {format_fen(total)} CNY in {len(held_today)} payments")
    return 0


def cmd_receivables(args) -> int:
    ledger = open_ledger(args)
    try:
        report = ledger.receivables(args.as_of)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        return 0
    buckets = list(report.bucket_totals)
    print(f"receivables as of {report.as_of}: clawbacks no payment has netted yet, aged in days since the clawback (CNY)")
    print(f"  {'payee':<20} {'since':<10} {'owed':>16} " + " ".join(f"{label:>14}" for label in buckets) + "  name")
    for p in report.payees:
        print(f"  {p.payee_id:<20} {p.since:<10} {format_fen(p.owed_fen):>16} " + " ".join(f"{format_fen(p.buckets[label]):>14}" for label in buckets) + f"  {p.payee_name}")
    print(f"  {'total':<31} {format_fen(report.total_fen):>16} " + " ".join(f"{format_fen(v):>14}" for v in report.bucket_totals.values()))
    print(f"{len(report.payees)} payee(s) owe {format_fen(report.total_fen)} CNY back")
    return 0


# -- registration -----------------------------------------------------------------------------


def add_ledger_commands(subparsers) -> None:
    from sinks.ledger import DEFAULT_LEDGER_URL

    ledger_parser = subparsers.add_parser("ledger", help="the disbursement ledger: init, export, reconcile, verify, keygen, checkpoint, balance, statement, holds, receivables")
    commands = ledger_parser.add_subparsers(dest="ledger_command", metavar="LEDGER_COMMAND")
    commands.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--ledger", metavar="URL", help=f"ledger database URL (default $SUBSIDY_LEDGER_URL or {DEFAULT_LEDGER_URL})")

    init = commands.add_parser("init", parents=[common], help="create the ledger schema or upgrade it to the newest revision; on PostgreSQL also its roles",
                               description="Create the ledger schema or upgrade it. On PostgreSQL, run as a superuser: it also creates "
                               "(or puts right) three login roles, the migrator (owns the tables), the writer (appends) and the reader "
                               "(SELECT only), with passwords from $SUBSIDY_MIGRATOR_PASSWORD, $SUBSIDY_WRITER_PASSWORD and "
                               "$SUBSIDY_READER_PASSWORD (or a file named by the same variable with _FILE). SQLite has no roles.")
    init.add_argument("--migrator-role", default="subsidy_migrator", metavar="NAME", help="role that owns the tables and runs the migrations (default %(default)s)")
    init.add_argument("--writer-role", default="subsidy_writer", metavar="NAME", help="role of the workers and the console's actions (default %(default)s)")
    init.add_argument("--reader-role", default="subsidy_reader", metavar="NAME", help="role of the console's pages and the exports (default %(default)s)")
    init.add_argument("--no-roles", action="store_true", help="PostgreSQL: only migrate, as the connecting user; create and grant no roles")
    init.set_defaults(func=cmd_init)

    export = commands.add_parser("export", parents=[common], help="finance export with control totals (CSV, or ISO 20022 pain.001.001.09)")
    export.add_argument("--format", choices=["csv", "pain001"], required=True, help="csv: payments and clawbacks, net control sum; pain001: the payments only, for the bank")
    export.add_argument("--from", dest="date_from", type=iso_date, metavar="YYYY-MM-DD", help="first value date (the policy's time zone), inclusive")
    export.add_argument("--to", dest="date_to", type=iso_date, metavar="YYYY-MM-DD", help="last value date (the policy's time zone), inclusive")
    export.add_argument("--out", metavar="FILE", help="file to write (default stdout)")
    export.add_argument("--created-at", type=rfc3339_time, metavar="RFC3339", help="pain.001 creation time (default now)")
    export.add_argument("--execution-date", type=iso_date, metavar="YYYY-MM-DD", help="pain.001 requested execution date (default --to, else today)")
    export.add_argument("--debtor-name", default="成都市经济和信息化局 (AI industry policy budget)", help="pain.001 paying party (default %(default)s)")
    export.add_argument("--debtor-account", default="CHENGDU-AI-SUBSIDY-BUDGET", help="pain.001 account paid from (default %(default)s)")
    export.set_defaults(func=cmd_export)

    rec = commands.add_parser("reconcile", parents=[common], help="recompute balances from the journal and list every difference; exit 1 on any")
    source = rec.add_mutually_exclusive_group()
    source.add_argument("--against", metavar="EVENTS.jsonl", help='replay {"topic", "value"} lines through the rules in event-time order, as the pipeline decides them, and compare '
                        '(they differ only where a claim reached the pipeline after its clause\'s allowed lateness: it took budget in arrival order, and its decision says late_by)')
    source.add_argument("--against-instructions", metavar="FILE.jsonl", help="compare with instruction dicts, one per line, e.g. the disbursement-instructions topic")
    rec.add_argument("--policy", metavar="FILE", help="policy file for --against (default the shipped one)")
    rec.set_defaults(func=cmd_reconcile)

    verify = commands.add_parser("verify", parents=[common], help="walk the hash chain, recompute accounts and cap usage, check signed checkpoints; exit 1 on any difference",
                                 description="Walk the hash chain (journal entries, payment events, decisions, rejections, listings), recompute "
                                 "accounts, cap charges and cap usage from the instructions, and check the chain against signed checkpoints. "
                                 "Names every difference (table, row, expected, found); exit 1 on any.")
    verify.add_argument("--checkpoints", metavar="SOURCE", help="signed checkpoints: a file of JSON lines, or kafka://HOST:PORT (the ledger-checkpoints topic)")
    verify.add_argument("--public-key", metavar="FILE", help="public key of the checkpoints (default $SUBSIDY_CHECKPOINT_PUBLIC_KEY, else $SUBSIDY_CHECKPOINT_KEY's .pub)")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(func=cmd_verify)

    keygen = commands.add_parser("keygen", help="make an Ed25519 key that signs the ledger's checkpoints (FILE, and FILE.pub to check them)")
    keygen.add_argument("--out", required=True, metavar="FILE", help="where the private key goes (never overwritten); its public key goes to FILE.pub")
    keygen.set_defaults(func=cmd_keygen)

    checkpoint = commands.add_parser("checkpoint", parents=[common], help="sign the chain head now and print it (or append it to --out) as a JSON line")
    checkpoint.add_argument("--key", metavar="FILE", help="private key (default $SUBSIDY_CHECKPOINT_KEY)")
    checkpoint.add_argument("--out", metavar="FILE", help="file of checkpoints to append to (default stdout)")
    checkpoint.set_defaults(func=cmd_checkpoint)

    bal = commands.add_parser("balance", parents=[common], help="account balances (budget per clause and year, payable per payee)")
    bal.add_argument("--fiscal-year", type=int, help="only this fiscal year's entries and caps (default all years)")
    bal.add_argument("--json", action="store_true", help="print the balances and caps as JSON (money as decimal strings)")
    bal.set_defaults(func=cmd_balance)

    st = commands.add_parser("statement", parents=[common], help="a payee's journal entries and balance for a fiscal year")
    st.add_argument("--payee", required=True, metavar="ID", help="the payee's USCC (or person/team id)")
    st.add_argument("--fiscal-year", type=int, required=True, help="the fiscal year of the entries, e.g. 2026")
    st.add_argument("--json", action="store_true", help="print the entries and balance as JSON (money as decimal strings)")
    st.set_defaults(func=cmd_statement)

    holds = commands.add_parser("holds", parents=[common], help="payments held while their payee is listed on payee-exclusions")
    holds.add_argument("--all", action="store_true", help="also the payments released since")
    holds.add_argument("--json", action="store_true", help="print the holds as JSON (money as decimal strings)")
    holds.set_defaults(func=cmd_holds)

    rcv = commands.add_parser("receivables", parents=[common], help="what payees owe back (clawbacks not yet netted against a payment), aged 0-30, 31-90, 91-180, >180 days")
    rcv.add_argument("--as-of", type=iso_date, metavar="YYYY-MM-DD", help="the day to age them on, and the clawbacks and offsets up to it (default today, UTC)")
    rcv.add_argument("--json", action="store_true", help="print them as JSON (money as decimal strings)")
    rcv.set_defaults(func=cmd_receivables)


def main(argv: list[str] | None = None) -> int:
    """Run the ledger commands without the rest of ``subsidy``: ``python -m sinks.cli ledger ...``."""
    parser = argparse.ArgumentParser(prog="subsidy")
    add_ledger_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _command_error() as error:
        print(f"subsidy: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 2)


if __name__ == "__main__":
    raise SystemExit(main())
