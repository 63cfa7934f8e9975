"""``subsidy payees import|list`` and ``subsidy payments batch|awaiting|approve|list|export``.

``add_payment_commands(subparsers)`` registers them on the ``subsidy`` command's subparsers; a
refusal (the maker approving, an unapproved batch exported, a bad CSV line) is one line and a
non-zero status, as every other mistake.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import getpass
import hashlib
import json
import os
import sys

from rules.money import AmountError, format_fen, parse_amount
from sinks.cli import _command_error, iso_date, rfc3339_time
from sinks.cli import open_ledger as _open

CSV_HEADER = ["payee_id", "account_name", "account_number", "bank_code", "verified_at"]
CSV_SOURCE = "payee-accounts-csv"
DUAL_APPROVAL_ENV = "SUBSIDY_DUAL_APPROVAL_ABOVE"
_FIELD_OF = {"beneficiary": "payee_id", "beneficiary.enterprise.uscc": "payee_id", "beneficiary.person.person_id": "payee_id",
             "beneficiary.team.team_ref": "payee_id", "beneficiary.enterprise.name": "account_name", "occurred_at": "verified_at"}


def _cnaps(text: str) -> str:
    if not (len(text) == 12 and text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a CNAPS participant code (12 digits)")
    return text


def _write(path: str | None, data: bytes) -> None:
    from sinks.cli import _write as write

    try:
        write(path, data)
    except OSError as error:
        raise _command_error()(f"cannot write {path}: {error.strerror}; the batch is not marked sent") from None


def _user(text: str) -> str:
    text = text.strip()
    if not 1 <= len(text) <= 100:
        raise argparse.ArgumentTypeError("a user name of 1 to 100 characters")
    return text


def dual_approval_above_fen() -> int:
    """The amount above which a batch needs two approvers: $SUBSIDY_DUAL_APPROVAL_ABOVE (CNY), else 10,000,000.00."""
    from sinks.ledger.payments import DEFAULT_DUAL_APPROVAL_ABOVE_FEN

    text = os.environ.get(DUAL_APPROVAL_ENV)
    if not text:
        return DEFAULT_DUAL_APPROVAL_ABOVE_FEN
    try:
        fen = parse_amount(text)
    except AmountError as error:
        raise _command_error()(f"${DUAL_APPROVAL_ENV}={text!r}: {error}") from None
    if fen < 0:
        raise _command_error()(f"${DUAL_APPROVAL_ENV}={text!r}: an amount of 0 or more, in CNY")
    return fen


# -- payees -----------------------------------------------------------------------------------


def _beneficiary(payee_id: str, name: str) -> dict[str, str]:
    from rules.identifiers import resident_id_problem, uscc_problem

    if len(payee_id) == 18 and uscc_problem(payee_id) is None:
        return {"uscc": payee_id, "name": name}
    if len(payee_id) == 18 and resident_id_problem(payee_id) is None:
        return {"person_id": payee_id, "name": name}
    if len(payee_id) == 18 and payee_id[:1].isdigit():  # shaped like a USCC: say what is wrong with it
        return {"uscc": payee_id, "name": name}
    return {"team_ref": payee_id, "name": name}


def read_accounts_csv(path: str, progress) -> list[dict]:
    """The account messages of a CSV file, every line checked first: nothing is imported from a
    file with a bad line. Raises CommandError naming the first bad line and how many there are."""
    from pydantic import ValidationError

    from rules.inputs import PayeeAccount
    from sinks.ledger.payments import utc_text

    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            lines = list(csv.reader(handle))
    except OSError as error:
        raise _command_error()(f"cannot read {path}: {error.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise _command_error()(f"{path}: not a UTF-8 CSV file ({error})") from None
    if not lines or [h.strip() for h in lines[0]] != CSV_HEADER:
        raise _command_error()(f"{path}:1: the header must be {','.join(CSV_HEADER)}")
    progress.total = len(lines) - 1
    messages, problems = [], []
    for number, row in enumerate(lines[1:], 2):
        progress.update()
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(CSV_HEADER):
            problems.append(f"{path}:{number}: {len(row)} fields, expected {len(CSV_HEADER)} ({','.join(CSV_HEADER)})")
            continue
        payee_id, name, number_text, bank_code, verified_at = (cell.strip() for cell in row)
        event_id = "csv-" + hashlib.sha256("\x1f".join((payee_id, number_text, bank_code, verified_at)).encode()).hexdigest()[:32]
        try:
            account = PayeeAccount.model_validate({"event_id": event_id, "source": CSV_SOURCE, "occurred_at": verified_at,
                                                   "beneficiary": _beneficiary(payee_id, name), "account_name": name,
                                                   "account_number": number_text, "bank_code": bank_code, "verified_at": verified_at})
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            shown = _FIELD_OF.get(where, where.split(".")[-1])
            hint = {"account_number": " (8 to 32 digits)", "bank_code": " (the bank's 12-digit CNAPS participant code)"}.get(shown, "")
            problems.append(f"{path}:{number}: {shown}: {first['msg']}{hint}")
            continue
        messages.append({"source": CSV_SOURCE, "event_id": event_id, "payee_id": payee_id, "account_name": account.account_name,
                         "account_number": account.account_number, "bank_code": account.bank_code,
                         "verified_at": utc_text(account.verified_at), "revoked": account.revoked})
    if problems:
        more = f" (and {len(problems) - 1} more bad line(s))" if len(problems) > 1 else ""
        raise _command_error()(f"{problems[0]}{more}; nothing imported")
    return messages


def cmd_payees_import(args) -> int:
    from subsidy.progress import Progress

    with Progress(None, "payees import", unit="rows") as progress:
        messages = read_accounts_csv(args.file, progress)
    ledger = _open(args)
    try:
        new, present = ledger.import_payee_accounts(messages)
        current, stored = ledger.payee_accounts()
    except Exception as error:  # noqa: BLE001 - PaymentRefused and database errors: one line
        raise _command_error()(f"payees import: {error}") from None
    finally:
        ledger.close()
    print(f"payees import: {new} account(s) new, {present} already in the ledger; {len(current)} payee(s) now have an account to be paid to ({stored} account records)")
    return 0


def cmd_payees_list(args) -> int:
    ledger = _open(args)
    try:
        current, stored = ledger.payee_accounts()
    finally:
        ledger.close()
    rows = [{"payee_id": a.payee_id, "account_name": a.account_name, "account_number": a.account_number, "bank_code": a.bank_code, "verified_at": a.verified_at}
            for a in sorted(current.values(), key=lambda a: a.payee_id)]
    if args.json:
        print(json.dumps({"accounts": rows}, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        print(f"  {row['payee_id']:<20} {row['bank_code']} {row['account_number']:<32} {row['verified_at']:<32} {row['account_name']}")
    print(f"{len(rows)} payee(s) with a verified, unrevoked account ({stored} account records)")
    return 0


# -- payments ---------------------------------------------------------------------------------


def _refusals(work):
    """Run ledger work; a PaymentRefused is one line for the user."""
    from sinks.ledger import PaymentRefused

    try:
        return work()
    except PaymentRefused as error:
        raise _command_error()(str(error)) from None


def cmd_batch(args) -> int:
    threshold = dual_approval_above_fen()
    ledger = _open(args)
    try:
        proposal = _refusals(lambda: ledger.propose_batch(args.user, clause_id=args.clause, until=args.until, dual_approval_above_fen=threshold))
    finally:
        ledger.close()
    approvers = "one approver" if proposal.approvals_required == 1 else f"two approvers (over {format_fen(threshold)} CNY)"
    print(f"batch {proposal.batch_id} proposed by {args.user}: {proposal.number_of_transactions} payment(s), {format_fen(proposal.control_sum_fen)} CNY; "
          f"needs {approvers} other than {args.user}: `subsidy payments approve {proposal.batch_id} --as USER`")
    held = sum(a.payments for a in proposal.awaiting)
    if held:
        print(f"awaiting account: {held} payment(s) of {len(proposal.awaiting)} payee(s), {format_fen(sum(a.amount_fen for a in proposal.awaiting))} CNY, "
              "not batched (`subsidy payments awaiting` lists them)")
    if proposal.held:
        print(f"held: {proposal.held} payment(s) of payees listed on payee-exclusions, not batched (`subsidy ledger holds` lists the holds)")
    if proposal.clawbacks:
        print(f"clawbacks left out: {proposal.clawbacks}, {format_fen(proposal.clawbacks_fen)} CNY: money to recover, never in a payment batch")
    if proposal.offsets:
        print(f"netted: {format_fen(proposal.offsets_fen)} CNY that payees owe back withheld from their payments ({proposal.offsets} offset(s)); "
              "`subsidy ledger receivables` lists what is still owed")
    return 0


def cmd_awaiting(args) -> int:
    ledger = _open(args)
    try:
        awaiting = ledger.awaiting_account(clause_id=args.clause, until=args.until)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps({"awaiting": [{"payee_id": a.payee_id, "payee_name": a.payee_name, "payments": a.payments, "amount": format_fen(a.amount_fen)} for a in awaiting]},
                         ensure_ascii=False, indent=2))
        return 0
    for a in awaiting:
        print(f"  {a.payee_id:<20} {a.payments:>6} payment(s) {format_fen(a.amount_fen):>18} CNY  {a.payee_name}")
    print(f"awaiting account: {sum(a.payments for a in awaiting)} payment(s) of {len(awaiting)} payee(s), {format_fen(sum(a.amount_fen for a in awaiting))} CNY; "
          "`subsidy payees import FILE.csv` adds their accounts")
    return 0


def cmd_approve(args) -> int:
    ledger = _open(args)
    try:
        state = _refusals(lambda: ledger.approve_batch(args.batch, args.user))
    finally:
        ledger.close()
    if state.status == "approved":
        print(f"batch {state.batch_id} approved by {', '.join(state.approvers)}: {state.number_of_transactions} payment(s), {format_fen(state.control_sum_fen)} CNY; "
              f"`subsidy payments export {state.batch_id} --format pain001 --out FILE` writes its payment file")
    else:
        print(f"batch {state.batch_id}: approval {len(state.approvers)} of {state.approvals_required} recorded ({args.user}); another approver, not {state.maker}, is needed")
    return 0


def cmd_list(args) -> int:
    ledger = _open(args)
    try:
        states = ledger.batches()
    finally:
        ledger.close()
    rows = [{"batch_id": s.batch_id, "status": s.status, "maker": s.maker, "approvers": s.approvers, "approvals_required": s.approvals_required,
             "payments": s.number_of_transactions, "amount": format_fen(s.control_sum_fen), "proposed_at": s.proposed_at, "sent_at": s.sent_at} for s in states]
    if args.json:
        print(json.dumps({"batches": rows}, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        print(f"  {row['batch_id']}  {row['status']:<9} {row['payments']:>7} payment(s) {row['amount']:>18} CNY  maker {row['maker']}, "
              f"approved by {', '.join(row['approvers']) or '-'} ({len(row['approvers'])} of {row['approvals_required']})")
    print(f"{len(rows)} batch(es)")
    return 0


def cmd_export(args) -> int:
    from sinks.cli import checkpoint_note, export_checkpoint
    from sinks.export import batch_csv, batch_pain001

    ledger = _open(args)
    try:
        state, items = _refusals(lambda: ledger.batch_contents(args.batch))
        if state.status == "proposed":
            raise _command_error()(f"batch {state.batch_id} is not approved ({len(state.approvers)} of {state.approvals_required} approvals): "
                                   f"`subsidy payments approve {state.batch_id} --as USER` first")
        checkpoint = export_checkpoint(ledger)
        if args.format == "csv":
            data = batch_csv(state, items, checkpoint).encode("utf-8")
            sent = None
        else:
            created_at = args.created_at or dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
            try:
                data = batch_pain001(state, items, created_at=created_at, execution_date=args.execution_date or dt.date.today().isoformat(),
                                     debtor_name=args.debtor_name, debtor_account=args.debtor_account, debtor_bank=args.debtor_bank,
                                     checkpoint=checkpoint)
            except ValueError as error:
                raise _command_error()(str(error)) from None
            _write(args.out, data)
            sent = _refusals(lambda: ledger.mark_sent(state.batch_id, args.user))
    finally:
        ledger.close()
    if args.format == "csv":
        _write(args.out, data)
    note = {None: "for review; the batch is not marked sent", True: "the batch is now marked sent",
            False: f"the batch was marked sent at {state.sent_at}: the same MsgId again, which a bank refuses as a duplicate"}[sent]
    print(f"batch {state.batch_id}: {len(items)} transactions, control sum {format_fen(sum(i.amount_fen for i in items))} CNY "
          f"({note}; clawbacks are never in a payment batch){checkpoint_note(checkpoint)}", file=sys.stderr)
    return 0


# -- registration -----------------------------------------------------------------------------


def add_payment_commands(subparsers) -> None:
    from sinks.export import DEFAULT_DEBTOR_ACCOUNT, DEFAULT_DEBTOR_NAME
    from sinks.ledger import DEFAULT_LEDGER_URL

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--ledger", metavar="URL", help=f"ledger database URL (default $SUBSIDY_LEDGER_URL or {DEFAULT_LEDGER_URL})")
    selection = argparse.ArgumentParser(add_help=False)
    selection.add_argument("--clause", metavar="CLAUSE", help="only the payments of this clause")
    selection.add_argument("--until", type=iso_date, metavar="YYYY-MM-DD", help="only payments with a value date up to this day (the policy's time zone)")

    payees = subparsers.add_parser("payees", help="payee bank accounts: import, list")
    payee_commands = payees.add_subparsers(dest="payees_command", metavar="PAYEES_COMMAND", required=True)
    imp = payee_commands.add_parser("import", parents=[common], help=f"import verified accounts from a CSV file ({','.join(CSV_HEADER)})")
    imp.add_argument("file", metavar="FILE.csv")
    imp.set_defaults(func=cmd_payees_import)
    lst = payee_commands.add_parser("list", parents=[common], help="each payee's current account (the newest verified, unrevoked one)")
    lst.add_argument("--json", action="store_true", help="print the accounts as JSON")
    lst.set_defaults(func=cmd_payees_list)

    payments = subparsers.add_parser("payments", help="maker-checker payment batches: batch, awaiting, approve, list, export; the bank's answers: ingest, status, reconcile, void")
    commands = payments.add_subparsers(dest="payments_command", metavar="PAYMENTS_COMMAND", required=True)
    batch = commands.add_parser("batch", parents=[common, selection], help="propose a batch of the unbatched payments whose payee has an account")
    batch.add_argument("--as", dest="user", type=_user, required=True, metavar="USER", help="who proposes it (the maker, who may not approve it)")
    batch.set_defaults(func=cmd_batch)
    awaiting = commands.add_parser("awaiting", parents=[common, selection], help="unbatched payments whose payee has no verified account, by payee")
    awaiting.add_argument("--json", action="store_true", help="print them as JSON")
    awaiting.set_defaults(func=cmd_awaiting)
    approve = commands.add_parser("approve", parents=[common], help=f"approve a batch (not its maker; two approvers above ${DUAL_APPROVAL_ENV}, default 10000000.00 CNY)")
    approve.add_argument("batch", metavar="BATCH")
    approve.add_argument("--as", dest="user", type=_user, required=True, metavar="USER", help="who approves it")
    approve.set_defaults(func=cmd_approve)
    listing = commands.add_parser("list", parents=[common], help="the batches with their state and approvers")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    listing.set_defaults(func=cmd_list)
    export = commands.add_parser("export", parents=[common], help="the payment file of an approved batch (pain001 marks it sent; csv for review)")
    export.add_argument("batch", metavar="BATCH")
    export.add_argument("--format", choices=["pain001", "csv"], required=True, help="pain001: the file for the bank, which marks the batch sent; csv: the same payments for review")
    export.add_argument("--out", metavar="FILE", help="file to write (default stdout)")
    export.add_argument("--as", dest="user", type=_user, default=_default_user(), metavar="USER", help="who sends it (default the login name)")
    export.add_argument("--created-at", type=rfc3339_time, metavar="RFC3339", help="pain.001 creation time (default now)")
    export.add_argument("--execution-date", type=iso_date, metavar="YYYY-MM-DD", help="pain.001 requested execution date (default today)")
    export.add_argument("--debtor-name", default=DEFAULT_DEBTOR_NAME, help="the paying party (default %(default)s)")
    export.add_argument("--debtor-account", default=DEFAULT_DEBTOR_ACCOUNT, help="the account paid from (default %(default)s)")
    export.add_argument("--debtor-bank", type=_cnaps, metavar="CNAPS", help="the 12-digit CNAPS code of the paying bank (default none: NOTPROVIDED)")
    export.set_defaults(func=cmd_export)
    from sinks.bank_cli import add_bank_commands

    add_bank_commands(commands, subparsers, common, _user)


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a container
        return "unknown"
