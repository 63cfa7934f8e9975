"""``subsidy payments ingest|status|reconcile|void`` (the bank's answers, a payment's life after
its file went to the bank and an operator's void, sinks/ledger/bank_answers.py) and ``subsidy bank-sim`` (a bank
answering a pain.001, sinks/bank_sim.py)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from rules.money import format_fen
from sinks.cli import _command_error
from sinks.cli import open_ledger as _open
from sinks.payments_cli import _refusals


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise _command_error()(f"cannot read {path!r}: {error.strerror}") from None


def cmd_ingest(args) -> int:
    from sinks.iso20022_answers import AnswerFileError, read_answers
    from sinks.ledger import AnswersRefused

    try:
        answers = read_answers(_read(args.file))
    except AnswerFileError as error:
        raise _command_error()(f"payments ingest: {args.file}: {error}; nothing booked") from None
    ledger = _open(args)
    try:
        result = ledger.ingest_answers(answers, args.user)
    except AnswersRefused as refused:
        for line in refused.problems:
            print(f"subsidy: payments ingest: {args.file}: {line}", file=sys.stderr)
        raise _command_error()(f"payments ingest: {args.file}: {len(refused.problems)} problem(s), nothing of the file booked", exit_code=1) from None
    finally:
        ledger.close()
    booked = ", ".join(f"{n} {status}" for status, n in sorted(result.booked.items())) or "nothing new"
    print(f"payments ingest: {args.file} ({answers.kind} {answers.message_id}, {len(answers.answers)} answer(s)): booked {booked}"
          + (f"; {result.already} already booked from this file" if result.already else "")
          + (f"; {result.repeated} confirming what the ledger knew" if result.repeated else ""))
    return 0


def cmd_status(args) -> int:
    ledger = _open(args)
    try:
        batches, failed, states = _refusals(lambda: ledger.payment_status(args.batch))
    finally:
        ledger.close()
    if args.json:
        print(json.dumps({"batches": [{"batch_id": b.batch_id, "states": {s: {"payments": n, "amount": format_fen(fen)} for s, (n, fen) in sorted(b.states.items())}}
                                      for b in batches],
                          "rejected_or_returned": [{"instruction_id": f.instruction_id, "batch_id": f.batch_id, "end_to_end_id": f.end_to_end_id,
                                                    "payee_id": f.payee_id, "amount": format_fen(f.amount_fen), "state": f.state, "reason_code": f.reason_code}
                                                   for f in failed]}, ensure_ascii=False, indent=2))
        return 0
    for b in batches:
        shown = ", ".join(f"{s} {n} ({format_fen(fen)} CNY)" for s, (n, fen) in sorted(b.states.items()))
        print(f"  {b.batch_id}  {shown}")
    for f in failed:
        print(f"  {f.state:<8} {f.reason_code or '-':<4} {f.batch_id} {f.end_to_end_id:<35} {format_fen(f.amount_fen):>16} CNY  {f.payee_id}")
    final = sum(1 for s in states.values() if s in ("settled", "voided"))
    requested = sum(1 for s in states.values() if s == "void-requested")
    print(f"{len(batches)} batch(es); {final} of {len(states)} payment(s) batched or voided in a final state (settled or voided); "
          f"{len(failed)} rejected or returned, waiting for a corrected account (`subsidy payees import`) or `subsidy payments void`"
          + (f"; {requested} whose void decide has not reached yet" if requested else ""))
    return 0


def cmd_reconcile(args) -> int:
    from sinks.iso20022_answers import AnswerFileError, read_statement, statement_differences

    try:
        message_id, days, entries = read_statement(_read(args.file))
    except AnswerFileError as error:
        raise _command_error()(f"payments reconcile: {args.file}: {error}") from None
    ledger = _open(args)
    try:
        booked = ledger.bookings(days)
    finally:
        ledger.close()
    differences = statement_differences(entries, booked)
    for line in differences:
        print(f"  {line}")
    shown_days = ", ".join(sorted(days)) or "no day"
    if differences:
        print(f"statement {message_id} ({shown_days}): {len(differences)} difference(s) with the ledger", file=sys.stderr)
        return 1
    print(f"statement {message_id} ({shown_days}): {len(entries)} entries, all as the ledger booked them")
    return 0


def cmd_void(args) -> int:
    """Record the void request in the ledger (the payment stops at once), then hand decide the
    void: published to ``payment-voids``, or appended to a file for ``subsidy replay``. With
    ``--overdue``, every rejected or returned payment its programme's ``void_unpaid_after`` says has
    waited too long for a corrected account."""
    from zoneinfo import ZoneInfo

    from rules.inputs import PAYMENT_VOIDS_TOPIC
    from rules.policy import SHIPPED_PROGRAMMES, load_policy

    if bool(args.instruction) == args.overdue:
        raise _command_error()("payments void: name one payment (INSTRUCTION) or say --overdue, not both")
    if args.instruction and not args.reason:
        raise _command_error()("payments void: say why with --reason TEXT (it is recorded in the hash chain)")
    policy = load_policy(args.policy or os.environ.get("SUBSIDY_POLICY") or SHIPPED_PROGRAMMES)
    broker: str = "" if args.to else args.broker or os.environ.get("SUBSIDY_BROKER") or ""
    if not args.to and not broker:
        raise _command_error()("payments void: say where the void goes: --broker HOST:PORT (subsidy up prints it) or $SUBSIDY_BROKER, "
                               "or --to FILE.jsonl for `subsidy replay`")
    zone = ZoneInfo(policy.timezone)
    ledger = _open(args)
    try:
        if args.overdue:
            asked = [(failed.instruction_id, reason) for failed, reason in _overdue(ledger, policy, args.reason)]
            if not asked:
                print("payments void --overdue: no rejected or returned payment has waited longer than its programme's void_unpaid_after; nothing to void")
                return 0
        else:
            asked = [(_refusals(lambda: ledger.resolve_instruction(args.instruction)), args.reason)]
        requests = [_refusals(lambda: ledger.request_void(instruction_id, args.user, reason)) for instruction_id, reason in asked]
    finally:
        ledger.close()
    messages = [request.message(zone) for request in requests]
    envelopes = "".join(json.dumps({"topic": PAYMENT_VOIDS_TOPIC, "value": message}, ensure_ascii=False) + "\n" for message in messages)
    said = [(f"void of payment {r.instruction_id} ({r.payment['amount']} CNY to {r.payment['payee']['id']}, {r.state}) "
             + (f"requested by {r.operator}" if r.new else f"requested by {r.operator} at {r.requested_at} already, sent again")) for r in requests]
    what = said[0] if len(said) == 1 else f"{len(said)} voids"
    if args.to:
        try:
            with open(args.to, "a", encoding="utf-8") as out:
                out.write(envelopes)
        except OSError as error:
            raise _command_error()(f"payments void: {what}, but cannot append to {args.to!r}: {error.strerror}; run the command again") from None
        where = f"appended to {args.to} for `subsidy replay`"
    else:
        _publish(envelopes, broker, what)
        where = f"published to {PAYMENT_VOIDS_TOPIC} on {broker}"
    for line in said[1:] if len(said) > 1 else ():
        print(line)
    clause = policy.clauses.get(messages[0]["payment"]["clause_id"])
    lateness = clause.allowed_lateness.at(dt.date.fromisoformat(messages[0]["occurred_at"][:10])) if clause and len(messages) == 1 else None
    after = f"its clause's allowed lateness ({_duration(lateness)})" if lateness is not None else "each clause's allowed lateness"
    print(f"{what}: out of every batch and re-issue from now; {where}; the room comes back under the caps when decide reaches "
          f"{'it' if len(said) == 1 else 'them'}, after {after}, and the ledger then books decide's clawback and marks the payment voided")
    return 0


def _overdue(ledger, policy, reason: str | None) -> list[tuple[Any, str]]:
    """The rejected and returned payments waiting for a corrected account for longer than their
    programme's ``void_unpaid_after`` (in force on the day of the bank's answer), with the reason
    their void records."""
    from zoneinfo import ZoneInfo

    zone, now = ZoneInfo(policy.timezone), dt.datetime.now(dt.timezone.utc)
    due = []
    for failed in _refusals(lambda: ledger.payment_status())[1]:
        if failed.answered_at is None or failed.clause_id not in policy.clauses:
            continue
        answered = dt.datetime.fromisoformat(failed.answered_at)
        programme = policy.programme_of(failed.clause_id)
        wait = programme.void_unpaid_after.at(answered.astimezone(zone).date()) if programme.void_unpaid_after else None
        if wait is None or answered + wait > now:
            continue
        due.append((failed, reason or (f"{failed.state} by the bank ({failed.reason_code or 'no reason code'}) on {answered.date()}, "
                                       f"no corrected account within {_duration(wait)}: {programme.policy_id} void_unpaid_after")))
    return due


def _publish(envelopes: str, broker: str, asked: str) -> None:
    """Publish the envelope lines (each ending in a newline)."""
    from streams.cli import _bootstrap
    from streams.tools.publish import BrokerUnreachable, NotAcknowledged, publish_file

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "void.jsonl"
        path.write_text(envelopes, encoding="utf-8")
        try:
            publish_file(str(path), _bootstrap(broker), client_id="subsidy-payments-void")
        except (BrokerUnreachable, NotAcknowledged) as error:
            raise _command_error()(f"payments void: {asked} (it stays out of batches), but {error}: run the command again to publish it") from None
        except Exception as error:  # noqa: BLE001 - the broker went away or refused it: one line for the user
            raise _command_error()(f"payments void: {asked} (it stays out of batches), but publishing to {broker} failed "
                                   f"({type(error).__name__}: {error}): run the command again to publish it") from None


def _duration(span: dt.timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:g} day(s)" if hours % 24 == 0 else f"{hours:g} h"


def share(text: str) -> float:
    try:
        rate = float(text)  # a share of the transfers, not money
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate between 0 and 1 (0.02 is 2 %)")
    return rate


def _reason(text: str) -> str:
    text = text.strip()
    if not 1 <= len(text) <= 500:
        raise argparse.ArgumentTypeError("a reason of 1 to 500 characters")
    return text


def cmd_bank_sim(args) -> int:
    from sinks.bank_sim import answer
    from sinks.iso20022_answers import AnswerFileError

    try:
        files = answer(_read(args.file), reject_rate=args.reject_rate, return_rate=args.return_rate, seed=args.seed, day=args.day)
    except AnswerFileError as error:
        raise _command_error()(f"bank-sim: {args.file}: {error}") from None
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        names = []
        for kind, data in (("pain002", files.pain002), ("camt054", files.camt054), ("camt053", files.camt053)):
            path = out / f"{files.message_id}-{kind}.xml"
            path.write_bytes(data)
            names.append(str(path))
    except OSError as error:
        raise _command_error()(f"bank-sim: cannot write in {args.out!r}: {error.strerror}") from None
    print(f"bank-sim: {files.message_id}: {files.settled} settled ({files.returned} of them then returned), {files.rejected} rejected; wrote {', '.join(names)}")
    return 0


def add_bank_commands(payment_commands, subparsers, common: argparse.ArgumentParser, user) -> None:
    """The payments subcommands of the bank's answers, and the top-level ``bank-sim``."""
    from sinks.cli import iso_date

    ingest = payment_commands.add_parser("ingest", parents=[common], help="book a bank's pain.002 (status) or camt.054 (settlements, returns) file")
    ingest.add_argument("file", metavar="FILE")
    ingest.add_argument("--as", dest="user", type=user, default="bank-file", metavar="USER", help="who ingests it (default %(default)s)")
    ingest.set_defaults(func=cmd_ingest)
    status = payment_commands.add_parser("status", parents=[common], help="payments and amounts per state per batch, and the rejected and returned ones")
    status.add_argument("batch", nargs="?", metavar="BATCH")
    status.add_argument("--json", action="store_true", help="print them as JSON")
    status.set_defaults(func=cmd_status)
    reconcile = payment_commands.add_parser("reconcile", parents=[common], help="match a camt.053 statement against what the ledger booked; exit 1 on any difference")
    reconcile.add_argument("file", metavar="CAMT053.xml")
    reconcile.set_defaults(func=cmd_reconcile)
    void = payment_commands.add_parser("void", parents=[common], help="void a payment not gone out (in no batch, or rejected or returned): "
                                       "it stops at once, and decide gives its room back under the caps")
    void.add_argument("instruction", nargs="?", metavar="INSTRUCTION", help="the instruction id (or its EndToEndId)")
    void.add_argument("--overdue", action="store_true", help="void every rejected or returned payment that has waited longer than "
                                                             "its programme's void_unpaid_after (policy file) for a corrected account")
    void.add_argument("--as", dest="user", type=user, required=True, metavar="USER", help="who voids it")
    void.add_argument("--reason", type=_reason, help="why (recorded in the hash chain; with --overdue, default: the policy's rule and the bank's answer)")
    void.add_argument("--broker", metavar="HOST:PORT", help="publish the void to payment-voids there (default $SUBSIDY_BROKER)")
    void.add_argument("--to", metavar="FILE.jsonl", help="append the void to this events file for `subsidy replay` instead of publishing it")
    void.add_argument("--policy", metavar="FILE[:FILE]", help="the programmes (their time zone, allowed lateness and void_unpaid_after; "
                                                              "default $SUBSIDY_POLICY, else the shipped city and district ones)")
    void.set_defaults(func=cmd_void)

    sim = subparsers.add_parser("bank-sim", help="answer a pain.001 as a bank would: pain.002, camt.054 and the day's camt.053")
    sim.add_argument("file", metavar="PAIN001.xml")
    sim.add_argument("--out", required=True, metavar="DIR", help="directory to write the three files in")
    sim.add_argument("--reject-rate", type=share, default=0.01, metavar="RATE", help="share of transfers rejected (default %(default)s)")
    sim.add_argument("--return-rate", type=share, default=0.02, metavar="RATE", help="share of transfers settled, then returned (default %(default)s)")
    sim.add_argument("--seed", type=int, default=0, help="the same seed gives the same answers (default %(default)s)")
    sim.add_argument("--day", type=iso_date, metavar="YYYY-MM-DD", help="booking day (default the pain.001's requested execution date)")
    sim.set_defaults(func=cmd_bank_sim)
