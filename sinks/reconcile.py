"""Reconciliation: recompute balances from the journal and compare them with what should be there.

Two sources of "what should be there":

* a replay of input events through the pure core (``expected_from_events``), or
* a file of instruction dicts as published on ``disbursement-instructions``
  (``expected_from_instructions``).

Every difference is listed to the fen; an empty list means the books agree.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Iterator

import sqlalchemy as sa

from rules.money import format_fen, parse_amount
from sinks.ledger import Ledger, LedgerError, payable_account
from sinks.ledger.schema import cap_charges, cap_usage, instructions_t


def iter_jsonl(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if line:
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise LedgerError(f"line {number}: not JSON ({error.msg})") from None


def expected_from_instructions(lines: Iterable[str]) -> list[dict]:
    """Instruction dicts, one JSON object a line (a dump of the instructions topic); repeats collapse."""
    seen: dict[str, dict] = {}
    for record in iter_jsonl(lines):
        if isinstance(record, dict) and "value" in record and "instruction_id" not in record:
            record = record["value"]  # {"topic", "key", "value"} dumps
        if not isinstance(record, dict) or "instruction_id" not in record:
            raise LedgerError(f"not an instruction: {json.dumps(record, ensure_ascii=False)[:200]}")
        seen[record["instruction_id"]] = record
    return list(seen.values())


def expected_from_events(lines: Iterable[str], policy_path: str | Path | None = None) -> list[dict]:
    """Run the pure core over ``{"topic", "value"}`` lines, deciding claims in event-time order
    as the pipeline and ``subsidy replay`` do; return the instructions it makes."""
    from rules.engine import Engine
    from rules.event_time import in_event_time_order
    from rules.intake import Claim, Rejected, intake
    from rules.policy import DEFAULT_POLICY_PATH, load_policy

    policy = load_policy(policy_path or DEFAULT_POLICY_PATH)
    claims: list[Claim] = []
    for record in iter_jsonl(lines):
        raw = json.dumps(record.get("value")).encode()
        try:
            claims += intake(record.get("topic", ""), raw, policy)
        except Rejected:
            continue
    engine = Engine(policy, {})
    produced: dict[str, dict] = {}
    for claim in in_event_time_order(claims):
        outcome = engine.decide(claim)
        for instruction in outcome.instructions:
            produced[instruction.instruction_id] = instruction.to_wire()
    return list(produced.values())


def _totals(instructions: Iterable[dict]) -> tuple[dict[tuple[str, int], int], dict[str, int]]:
    by_budget: dict[tuple[str, int], int] = defaultdict(int)
    by_payee: dict[str, int] = defaultdict(int)
    for i in instructions:
        fen = parse_amount(i["amount"])
        by_budget[(i["clause_id"], int(i["fiscal_year"]))] += fen
        by_payee[i["payee"]["id"]] += fen
    return by_budget, by_payee


def internal_differences(ledger: Ledger) -> list[str]:
    """The journal against itself: hash chain, derived data (``subsidy ledger verify``'s checks), instructions table, cap usage, payable accounts."""
    problems = list(ledger.verify().problems)
    journal_totals = ledger.granted_totals()
    with ledger.engine.connect() as conn:
        table_totals: dict[tuple[str, int], int] = {
            (clause, int(year)): int(total)
            for clause, year, total in conn.execute(
                sa.select(instructions_t.c.clause_id, instructions_t.c.fiscal_year, sa.func.sum(instructions_t.c.amount_fen)).group_by(instructions_t.c.clause_id, instructions_t.c.fiscal_year)
            )
        }
        charged = {scope: int(total) for scope, total in conn.execute(sa.select(cap_charges.c.scope, sa.func.sum(cap_charges.c.delta)).group_by(cap_charges.c.scope))}
        usage = {row.scope: (row.kind, int(row.used), int(row.cap_limit)) for row in conn.execute(sa.select(cap_usage))}
    for clause, years in journal_totals.items():
        for year, total in years.items():
            stored = table_totals.pop((clause, year), 0)
            if stored != total:
                problems.append(f"{clause} {year}: journal {format_fen(total)} but instructions table {format_fen(stored)} (difference {format_fen(total - stored)})")
    for (clause, year), stored in table_totals.items():
        problems.append(f"{clause} {year}: instructions table {format_fen(stored)} with no journal entries")
    for scope, (kind, used, limit) in usage.items():
        if charged.get(scope, 0) != used:
            shown = format_fen if kind == "amount" else str
            problems.append(f"cap {scope}: used {shown(used)} but its charges sum to {shown(charged.get(scope, 0))}")
        if used > limit:
            problems.append(f"cap {scope}: used {used} over its limit {limit}")
    # a payee's position is its payable with its receivable: an offset moves money between the two
    positions: dict[str, int] = {}
    for account, balance in ledger.account_balances().items():
        if account.startswith(("payable:", "receivable:")):
            payee = payable_account(account.split(":", 1)[1])
            positions[payee] = positions.get(payee, 0) + balance
    for account, balance in positions.items():
        if balance > 0:
            problems.append(f"{account}: clawed back {format_fen(balance)} more than was paid")
    return problems


def differences(ledger: Ledger, expected: list[dict] | None) -> list[str]:
    """Every difference between the ledger and ``expected`` instructions (and within the ledger), to the fen."""
    problems = internal_differences(ledger)
    if expected is None:
        return problems
    booked = {i["instruction_id"]: i for i in ledger.instructions()}
    wanted = {i["instruction_id"]: i for i in expected}
    for iid in sorted(wanted.keys() - booked.keys()):
        i = wanted[iid]
        problems.append(f"instruction {iid} ({i['clause_id']} {i['fiscal_year']} {i['payee']['id']} {i['amount']}) is missing from the ledger")
    for iid in sorted(booked.keys() - wanted.keys()):
        i = booked[iid]
        problems.append(f"instruction {iid} ({i['clause_id']} {i['fiscal_year']} {i['payee']['id']} {i['amount']}) is in the ledger but not expected")
    for iid in sorted(booked.keys() & wanted.keys()):
        a, b = parse_amount(booked[iid]["amount"]), parse_amount(wanted[iid]["amount"])
        if a != b:
            problems.append(f"instruction {iid}: ledger {format_fen(a)}, expected {format_fen(b)} (difference {format_fen(a - b)})")
    got_budget, got_payee = _totals(booked.values())
    want_budget, want_payee = _totals(wanted.values())
    for key in sorted(got_budget.keys() | want_budget.keys()):
        a, b = got_budget.get(key, 0), want_budget.get(key, 0)
        if a != b:
            problems.append(f"budget {key[0]} {key[1]}: ledger {format_fen(a)}, expected {format_fen(b)} (difference {format_fen(a - b)})")
    for payee in sorted(got_payee.keys() | want_payee.keys()):
        a, b = got_payee.get(payee, 0), want_payee.get(payee, 0)
        if a != b:
            problems.append(f"{payable_account(payee)}: ledger {format_fen(a)}, expected {format_fen(b)} (difference {format_fen(a - b)})")
    return problems
