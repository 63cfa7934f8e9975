"""What-if: the same events decided under two sets of policies, in memory, and what differs.

``simulate(events, policies)`` runs input messages through intake and the engine exactly as a
replay does (every claim in event-time order, ``rules.event_time.order_key``; the state in memory, ``rules.compact_state``; no
ledger) and keeps only what a comparison needs, summed from the engine's records: net granted
per programme, clause and fiscal year, net granted per payee, and the day each programme budget
(a cap with ``per: []`` and a fiscal-year period) ran out. ``compare(current, new)`` sets two
outcomes side by side. Nothing here reads a file or knows a database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

from rules.compact_state import CompactState
from rules.engine import Engine
from rules.event_time import order_key
from rules.inputs import PAYMENT_VOIDS_TOPIC, InputMessage, PaymentVoid
from rules.intake import Claim, Rejected, claim_of_void, claims_from_message, parse_as, parse_message
from rules.money import format_fen
from rules.policy import Policy
from rules.records import AmountCapStep, Decision, GrantComputation

Totals = dict[str, dict[str, dict[str, int]]]  # programme (policy_id) -> clause -> fiscal year -> fen
Budget = tuple[str, str, str]  # (programme, clause, fiscal year)


@dataclass
class Outcome:
    """What a set of policies pays for a set of events."""

    granted: Totals = field(default_factory=dict)  # net of clawbacks
    by_payee: dict[str, int] = field(default_factory=dict)  # payee id -> net fen
    payee_names: dict[str, str] = field(default_factory=dict)
    exhausted: dict[Budget, str] = field(default_factory=dict)  # budget -> first day its room reached 0 (policy time zone)
    budgets: set[Budget] = field(default_factory=set)  # every budget a decision was charged to or declined by
    claims: int = 0
    rejected: int = 0  # events intake refused under these policies


def _programme_caps(policy: Policy) -> dict[str, set[str]]:
    """clause -> ids of its programme budgets: caps over the whole programme for a fiscal year."""
    return {clause.id: {cap.id for cap in clause.caps if not cap.per and cap.period == "fiscal-year"} for clause in policy.clauses.values()}


@dataclass
class Messages:
    """Input messages validated once (intake's policy-free half), for as many policies as asked."""

    valid: list[tuple[str, InputMessage | PaymentVoid]]
    invalid: int  # messages no policy could take: not JSON, not the contract


def parse_events(events: Iterable[tuple[str, bytes]]) -> Messages:
    messages = Messages([], 0)
    for topic, raw in events:
        try:
            messages.valid.append((topic, parse_as(PaymentVoid, raw) if topic == PAYMENT_VOIDS_TOPIC else parse_message(topic, raw)))
        except Rejected:
            messages.invalid += 1
    return messages


def simulate(events: Iterable[tuple[str, bytes]] | Messages, policies: Sequence[Policy]) -> Outcome:
    """Decide ``events`` ((topic, message bytes), e.g. a replay file's lines, or those already
    parsed by ``parse_events``) under ``policies``, as intake and the engine decide them.

    Each policy decides the claims its own intake makes, with its own state: programmes that run
    together (combined caps, 就高不重复 across them) come as one policy (``rules.policy.combine``),
    as `subsidy whatif` loads a list of files."""
    messages = events if isinstance(events, Messages) else parse_events(events)
    outcome = Outcome()
    for policy in policies:
        outcome.rejected += messages.invalid
        claims: list[Claim] = []
        for topic, message in messages.valid:
            try:
                # an operator's void withdraws a payment under either policy, as a replay decides it
                claims.extend([claim_of_void(message, policy)] if isinstance(message, PaymentVoid) else claims_from_message(topic, message, policy))
            except Rejected:
                outcome.rejected += 1
        claims.sort(key=order_key)
        outcome.claims += len(claims)
        engine = Engine(policy, CompactState())
        zone = ZoneInfo(policy.timezone)
        budget_caps = _programme_caps(policy)
        for claim in claims:
            decided = engine.decide(claim)
            if decided.rejection is not None or decided.duplicate:
                continue
            for decision in decided.decisions:
                _note_budgets(outcome, decision, budget_caps.get(decision.clause_id, set()), zone)
            for instruction in decided.instructions:
                years = outcome.granted.setdefault(instruction.policy_id, {}).setdefault(instruction.clause_id, {})
                year = str(instruction.fiscal_year)
                years[year] = years.get(year, 0) + instruction.amount
                payee = instruction.payee
                outcome.by_payee[payee.id] = outcome.by_payee.get(payee.id, 0) + instruction.amount
                outcome.payee_names.setdefault(payee.id, payee.name)
    return outcome


def _note_budgets(outcome: Outcome, decision: Decision, budget_caps: set[str], zone: ZoneInfo) -> None:
    """Record a budget's first day without room: the day of the claim whose grant took its last fen
    (or its last place, for a count cap)."""
    computation = decision.computation
    if not budget_caps or not isinstance(computation, GrantComputation):
        return
    budget = (decision.policy_id, decision.clause_id, str(decision.fiscal_year))
    for step in computation.caps:
        if step.cap not in budget_caps:
            continue
        outcome.budgets.add(budget)
        if budget in outcome.exhausted:
            continue
        used_after = step.used_before + (decision.granted if isinstance(step, AmountCapStep) else (step.adds if decision.granted else 0))
        if used_after >= step.limit:
            outcome.exhausted[budget] = dt.datetime.fromisoformat(decision.occurred_at).astimezone(zone).date().isoformat()


@dataclass
class PayeeChange:
    payee_id: str
    name: str
    current: int
    new: int

    @property
    def change(self) -> int:
        return self.new - self.current


@dataclass
class Comparison:
    current: Outcome
    new: Outcome
    diff: Totals
    changes: list[PayeeChange]  # every payee whose net differs, largest change first

    def to_json(self) -> dict[str, Any]:
        """``{"current": {"granted": {clause: {year: amount}}}, "new": {...}, "diff": {...},
        "payees_affected": N, "exhaustion": {"current": {clause: {year: day|null}}, "new": {...}}}``.

        Clauses are keyed by their id while every total is of one programme, and by
        ``programme/clause`` once several programmes are compared (their clause ids may repeat)."""
        several = len(set(self.current.granted) | set(self.new.granted) | {b[0] for b in self.current.budgets | self.new.budgets}) > 1

        def name(programme: str, clause: str) -> str:
            return f"{programme}/{clause}" if several else clause

        def amounts(totals: Totals) -> dict[str, dict[str, str]]:
            return {
                name(programme, clause): {year: format_fen(fen) for year, fen in sorted(years.items())}
                for programme, clauses in sorted(totals.items()) for clause, years in sorted(clauses.items())
            }

        def exhaustion(outcome: Outcome) -> dict[str, dict[str, str | None]]:
            out: dict[str, dict[str, str | None]] = {}
            for programme, clause, year in sorted(outcome.budgets):
                out.setdefault(name(programme, clause), {})[year] = outcome.exhausted.get((programme, clause, year))
            return out

        return {
            "current": {"granted": amounts(self.current.granted)},
            "new": {"granted": amounts(self.new.granted)},
            "diff": amounts(self.diff),
            "payees_affected": len(self.changes),
            "exhaustion": {"current": exhaustion(self.current), "new": exhaustion(self.new)},
        }


def compare(current: Outcome, new: Outcome) -> Comparison:
    diff: Totals = {}
    for programme in sorted(set(current.granted) | set(new.granted)):
        before, after = current.granted.get(programme, {}), new.granted.get(programme, {})
        for clause in sorted(set(before) | set(after)):
            years_before, years_after = before.get(clause, {}), after.get(clause, {})
            for year in sorted(set(years_before) | set(years_after)):
                diff.setdefault(programme, {}).setdefault(clause, {})[year] = years_after.get(year, 0) - years_before.get(year, 0)
    changes = [
        PayeeChange(payee, new.payee_names.get(payee) or current.payee_names.get(payee, ""), current.by_payee.get(payee, 0), new.by_payee.get(payee, 0))
        for payee in set(current.by_payee) | set(new.by_payee)
        if current.by_payee.get(payee, 0) != new.by_payee.get(payee, 0)
    ]
    changes.sort(key=lambda c: (-abs(c.change), c.payee_id))
    return Comparison(current, new, diff, changes)
