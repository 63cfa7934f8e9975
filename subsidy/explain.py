"""``subsidy explain ID``: why a payment is what it is, recomputed from its record and the policy.

Finds the decision or instruction in the ledger (a full id, with or without hyphens, or a unique
prefix of at least 8 hex digits), with the records it goes with (a payment's decision, a
clawback's original), has ``rules.explain`` redo the arithmetic, and prints it for a finance
officer or an auditor. Exit 0 when the recomputation equals the amount paid to the fen and every
figure of the record agrees, 1 when not (each difference named), 2 on a mistake (an unknown or
ambiguous id, a ledger that cannot be read), in one line.
"""

from __future__ import annotations

import argparse
import json
import re
import unicodedata
from typing import Any

from rules.explain import ClawbackWorking, ExplainError, Explanation, PaymentWorking, RefundWorking, explain
from rules.money import format_grouped
from rules.policy import DEFAULT_POLICY_PATH, Cap, load_policy

MIN_PREFIX = 8
_HEX = re.compile(r"[0-9a-f]+")


def _command_error(message: str) -> Exception:
    from subsidy.cli import CommandError  # subsidy.cli imports this module

    return CommandError(message)


def record_id(text: str) -> str:
    """The hex digits of an id as typed: a uuid with or without hyphens, or a prefix of one."""
    digits = text.strip().replace("-", "").lower()
    if not _HEX.fullmatch(digits) or not MIN_PREFIX <= len(digits) <= 32:
        raise _command_error(f"{text!r} is not a decision or instruction id: give its 32 hex digits (hyphens allowed) "
                             f"or a prefix of at least {MIN_PREFIX} of them")
    return digits


def find_records(ledger: Any, digits: str, where: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """(decision, instruction, original) of the id: what ``rules.explain.explain`` needs."""
    matches = ledger.ids_starting_with(digits)
    if not matches:
        raise _command_error(f"no decision or instruction {'is' if len(digits) == 32 else 'starts with'} {digits} in ledger {where} "
                             "(`subsidy ledger statement --payee ID` lists a payee's instruction ids)")
    if len(matches) > 1:
        shown = ", ".join(f"{kind} {found}" for kind, found in matches[:3]) + (", ..." if len(matches) > 3 else "")
        raise _command_error(f"{digits} is the start of {len(matches) if len(matches) < 10 else 'at least 10'} ids ({shown}): give more digits")
    kind, found = matches[0]
    if kind == "instruction":
        instruction = ledger.instruction_body(found)
        decision = ledger.decision_paying(instruction["clause_id"], instruction["fiscal_year"], found)
    else:
        decision = ledger.decision_body(found)
        instruction = ledger.instruction_body(decision["instruction_id"]) if decision.get("instruction_id") else None
    original = None
    if instruction is not None and instruction.get("corrects"):
        original = ledger.decision_paying(instruction["clause_id"], instruction["fiscal_year"], instruction["corrects"])
    elif decision is not None and decision.get("corrects") and "refunded_total" not in decision["computation"]:
        # an adjustment that clawed nothing back: its original may have paid nothing either
        original = ledger.decision_of_event(decision["clause_id"], decision["fiscal_year"], decision["source"], decision["corrects"])
    return decision, instruction, original


def cmd_explain(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from sinks.cli import open_ledger
    from sinks.ledger import first_line, ledger_url, shown_url

    digits = record_id(args.id)
    policy = load_policy(args.policy) if args.policy else load_policy()
    where = shown_url(ledger_url(args.ledger))
    ledger = open_ledger(args)
    try:
        decision, instruction, original = find_records(ledger, digits, where)
    except SQLAlchemyError as error:
        raise _command_error(f"cannot read ledger {where}: {first_line(error)}") from None
    finally:
        ledger.close()
    try:
        explanation = explain(policy, decision=decision, instruction=instruction, original=original)
    except ExplainError as error:
        raise _command_error(f"cannot explain {digits}: {error}") from None
    if args.json:
        print(json.dumps(explanation.to_json(), ensure_ascii=False, indent=2))
    else:
        print("\n".join(render(explanation, args.policy or "the shipped policy file")))
    return 0 if explanation.reproduced else 1


# --- the text -------------------------------------------------------------------------------


def render(e: Explanation, policy_file: str) -> list[str]:
    record, decision, instruction = e.record, e.decision, e.instruction
    lines = []
    if instruction is not None:
        lines.append(_label("instruction") + f"{instruction['instruction_id']}  {instruction['kind']} of {format_grouped(e.paid)} CNY")
    if decision is not None:
        lines.append(_label("decision") + f"{decision['decision_id']}  {decision['outcome']}" + (f": {decision['reason']}" if decision.get("reason") else ""))
    clause, policy = e.clause, e.policy
    decided_under = f"{record.get('policy_id')} version {record.get('policy_version')}"
    lines += [
        _label("clause") + f"{clause.id}, article {clause.article}, {clause.title}",
        _label("") + clause.text,
        _label("policy") + (f"{decided_under}, as in {policy_file}" if decided_under == f"{policy.policy_id} version {policy.version}"
                            else f"decided under {decided_under}; {policy_file} is {policy.policy_id} version {policy.version}"),
        _label("event") + f"{', '.join(e.event_ids)} from {record.get('source')}, {record.get('occurred_at')}, fiscal year {record.get('fiscal_year')}",
        _label("payee") + _party(record.get("payee")),
        _label("beneficiary") + _party(record.get("beneficiary")),
    ]
    if isinstance(e.working, (ClawbackWorking, RefundWorking)):
        payment = f", payment {e.working.corrects_instruction}" if isinstance(e.working, ClawbackWorking) and e.working.corrects_instruction else ""
        lines.append(_label("corrects") + f"event {e.working.corrects_event}{payment}")
    if e.order:
        late = e.order["late_by"]
        lines.append(_label("order") + "took budget in the order of occurred_at, then source, then event_id"
                     + (f"; came {late} too late for its place, so in arrival order" if late else ", in its place"))
    if e.values:
        corrected = ", the day of the payment it corrects" if isinstance(e.working, ClawbackWorking) else ""
        lines += ["", f"values in force on {e.day} ({policy.timezone}){corrected}"]
        lines += _table(["value", "in force", "from", "basis", "reference"], [[v.name, v.value, str(v.start), v.basis, v.reference] for v in e.values], right=[1])
    lines += ["", "arithmetic (CNY)"]
    paid = ["paid", format_grouped(e.paid), f"the {e.paid_by}'s amount"]
    if isinstance(e.working, PaymentWorking):
        lines += _payment(e.working, {cap.id: cap for cap in clause.caps}, paid)
    elif isinstance(e.working, ClawbackWorking):
        lines += _clawback(e.working, {cap.id: cap for cap in clause.caps}, paid)
    else:
        lines += _table(["", "", ""], [["refund", format_grouped(e.working.refund), "of an event not decided yet"],
                                       ["refunded so far", format_grouped(e.working.refunded_total), "netted from its base when it is decided"], paid],
                        right=[1], header=False)
    lines.append("")
    if e.reproduced:
        lines.append(f"reproduced: {format_grouped(e.recomputed)} CNY, recomputed from the policy and the record's inputs, equals the amount paid to the fen")
    else:
        lines.append(f"NOT REPRODUCED: {len(e.differences)} difference(s) between the recomputation and the record")
        lines += _table(["what", "recomputed", "recorded"], [[d.what, d.recomputed, d.recorded] for d in e.differences], right=[1, 2])
    return lines


def _payment(w: PaymentWorking, caps: dict[str, Cap], paid: list[str]) -> list[str]:
    before = []
    if w.base is not None:
        before.append(["base", format_grouped(w.base), ""])
        if w.refunded_before:
            before.append(["− refunded before the decision", format_grouped(w.refunded_before), f"net base {format_grouped(w.net_base or 0)}"])
    if w.entitlement is None:
        before.append(["entitlement before caps", "none", "the policy has no value in force on the day"])
    elif w.rate is not None:
        before.append([f"× rate {w.rate}, rounded down to the fen", format_grouped(w.entitlement), "entitlement before caps"])
    else:
        before.append(["amount" + (f" for grade {w.grade}" if w.grade else ""), format_grouped(w.entitlement), "entitlement before caps"])
    stopped = {None: "", "not-in-force": "a value not in force on the day", "nothing-to-pay": "nothing to pay"}.get(w.stopped_by, f"first cut by {w.stopped_by}")
    after = [["granted", format_grouped(w.granted), stopped], paid]
    lines = _table(["", "", ""], before + after, right=[1], header=False)
    if w.caps:
        rows = []
        for step in w.caps:
            cap = caps.get(step.cap_id)
            counted = "" if step.adds else f" (this {cap.distinct if cap else 'subject'} already counted)"
            rows.append([step.cap_id, _scope(step.scope, cap) + counted, _figure(cap, step.limit), _figure(cap, step.used_before), _figure(cap, step.room_before),
                         format_grouped(step.cut), format_grouped(step.granted_after)])
        table = _table(["cap", "applies to", "limit", "used before", "room before", "cut", "granted after"], rows, right=[2, 3, 4, 5, 6])
        lines[len(before):len(before)] = ["  " + line for line in table]
    return lines


def _clawback(w: ClawbackWorking, caps: dict[str, Cap], paid: list[str]) -> list[str]:
    rows = [
        ["original base", format_grouped(w.original_base), ""],
        ["− refunded before", format_grouped(w.refunded_before), ""],
        ["− this refund", format_grouped(w.refund), ""],
        ["net base", format_grouped(w.net_base), ""],
        ["funded elsewhere for more (就高不重复)", format_grouped(w.entitlement), "the decision names the claim that funds the project"] if w.superseded else
        [f"voided by {w.voided_by.get('operator')}", format_grouped(w.entitlement), str(w.voided_by.get("reason"))[:80]] if w.voided_by else
        [f"× rate {w.rate}, rounded down to the fen" if w.rate else "a fixed amount, unchanged by a refund", format_grouped(w.entitlement), "entitlement on the net base"],
        ["granted before", format_grouped(w.granted_before), ""],
        ["granted after", format_grouped(w.granted_after), "the lesser of the two above"],
        ["clawed back", format_grouped(-w.clawback), ""],
        paid,
    ]
    lines = _table(["", "", ""], rows, right=[1], header=False)
    if w.releases:
        lines += ["  room given back:"] + ["  " + line for line in _table(["cap", "applies to", "released"], [[r.cap_id, _scope(r.scope, caps.get(r.cap_id)), _figure(caps.get(r.cap_id), r.amount)]
                                                                                                        for r in w.releases], right=[2])]
    return lines


def _party(party: Any) -> str:
    return f"{party.get('id')} {party.get('name')} ({party.get('kind')})" if isinstance(party, dict) else str(party)


def _scope(scope: str, cap: Cap | None) -> str:
    """A cap's state key ``["cap", clause, cap, period, *who]`` as a person reads it, ``who`` named by the cap's ``per``."""
    per = cap.per if cap else ()
    try:
        parts = json.loads(scope)
    except ValueError:
        return scope
    if not isinstance(parts, list) or len(parts) != 4 + len(per):
        return scope
    period = "for ever" if parts[3] == "ever" else f"fiscal year {parts[3]}"
    return ", ".join([period, *(f"{name} {who}" for name, who in zip(per, parts[4:]))]) if per else f"{period}, the whole programme"


def _figure(cap: Cap | None, value: int) -> str:
    """Money under an amount cap; under a count cap, a number of paid claims, or of distinct subjects."""
    if cap is None or cap.amount is not None:
        return format_grouped(value)
    return f"{value} {cap.distinct}s" if cap.distinct else f"{value} claims"


def _label(name: str) -> str:
    return f"{name:<12}"


def _width(text: str) -> int:
    """Columns a terminal gives the text: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _table(columns: list[str], rows: list[list[str]], right: list[int], header: bool = True) -> list[str]:
    """Rows under their column names, two spaces in, columns in ``right`` aligned right."""
    shown = [columns, *rows] if header else rows
    widths = [max(_width(row[n]) for row in shown) for n in range(len(columns))]
    lines = []
    for row in shown:
        cells = [" " * (widths[n] - _width(cell)) + cell if n in right else cell + " " * (widths[n] - _width(cell)) for n, cell in enumerate(row)]
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def add_explain_command(subparsers: Any) -> None:
    from sinks.ledger import DEFAULT_LEDGER_URL

    cmd = subparsers.add_parser("explain", help="why a payment is what it is: clause, dated values, caps and the arithmetic, recomputed and checked")
    cmd.add_argument("id", metavar="ID", help=f"an instruction or decision id (hyphens allowed), or a unique prefix of at least {MIN_PREFIX} hex digits")
    cmd.add_argument("--ledger", metavar="URL", help=f"ledger database URL (default $SUBSIDY_LEDGER_URL or {DEFAULT_LEDGER_URL})")
    cmd.add_argument("--policy", metavar="FILE", help=f"the policy file the record was decided under (default {DEFAULT_POLICY_PATH.name})")
    cmd.add_argument("--json", action="store_true", help="print the explanation as JSON (money as decimal strings); the exit status is the same")
    cmd.set_defaults(func=cmd_explain)

