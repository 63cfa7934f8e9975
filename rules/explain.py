"""Why a payment is what it is: a decision or instruction explained and its amount recomputed.

``explain(policy, decision=..., instruction=..., original=...)`` takes the records as the engine
wrote them (the ledger keeps their bodies) and the policy, and redoes the arithmetic from the
policy's dated values and the record's *inputs* alone: the base, the refunds before it, the
grade, each cap's usage before the claim, and the day it happened. The record's own results
(entitlement, room, granted, the amount) are never read back into the working; they are
compared with it, and every disagreement is a :class:`Difference`. An auditor holding the policy
file and the record gets the same figure to the fen, or learns exactly where it departs.

Pure: no database, no Kafka. ``subsidy explain`` (subsidy/explain.py) finds the records.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from zoneinfo import ZoneInfo

from rules.eligibility import ineligibility
from rules.money import AmountError, Rate, format_fen, format_grouped, parse_amount
from rules.policy import Cap, Clause, Dated, DatedValue, Policy

T = TypeVar("T")


class ExplainError(ValueError):
    """Records that cannot be explained at all (not engine records, or a clause the policy lacks)."""


@dataclass(frozen=True, slots=True)
class ValueUsed:
    """One dated value of the policy the working used, as in force on the claim's day."""

    name: str
    value: str
    start: dt.date
    basis: str
    reference: str


@dataclass(frozen=True, slots=True)
class CapStep:
    """One cap applied to a payment: ``limit`` from the policy, ``used_before`` from the record,
    the rest recomputed. Money in fen for an amount cap, a number of paid claims for a count cap."""

    cap_id: str
    kind: str  # amount | count
    scope: str  # the state key of the cap's running usage, as recorded
    limit: int
    used_before: int
    room_before: int
    adds: int  # a count cap: 1, or 0 when a distinct cap already counted the subject
    granted_before: int
    granted_after: int

    @property
    def cut(self) -> int:
        return self.granted_before - self.granted_after


@dataclass(frozen=True, slots=True)
class PaymentWorking:
    base: int | None  # a share's base as claimed; None for a fixed or graded amount
    refunded_before: int  # refunds that arrived before the claim was decided
    rate: Rate | None
    grade: str | None
    entitlement: int | None  # before caps; None when the policy has no value in force that day
    caps: tuple[CapStep, ...]
    stopped_by: str | None  # the first cap that cut, or not-in-force, or nothing-to-pay
    granted: int

    @property
    def net_base(self) -> int | None:
        return None if self.base is None else max(0, self.base - self.refunded_before)


@dataclass(frozen=True, slots=True)
class Release:
    """Room a clawback gives back under one cap the original payment was charged to."""

    cap_id: str
    kind: str
    scope: str
    amount: int  # fen for an amount cap, places for a count cap


@dataclass(frozen=True, slots=True)
class ClawbackWorking:
    corrects_event: str
    corrects_instruction: str | None
    original_base: int
    refunded_before: int
    refund: int
    rate: Rate | None
    entitlement: int  # on the net base
    granted_before: int
    granted_after: int
    releases: tuple[Release, ...]
    superseded: bool = False  # clawed back whole as a claim elsewhere funds the project for more (就高不重复)
    voided_by: dict[str, str] | None = None  # clawed back whole by an operator's void: {"operator", "reason"}

    @property
    def net_base(self) -> int:
        return self.original_base - self.refunded_before - self.refund

    @property
    def clawback(self) -> int:
        return self.granted_before - self.granted_after


@dataclass(frozen=True, slots=True)
class RefundWorking:
    """A refund that came before its original: nothing paid, the sum kept to net the original."""

    corrects_event: str
    refund: int
    refunded_total: int


Working = PaymentWorking | ClawbackWorking | RefundWorking


@dataclass(frozen=True, slots=True)
class Difference:
    """Where the record departs from the recomputation: what, the recomputed and the recorded value."""

    what: str
    recomputed: str
    recorded: str


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: dict[str, Any] | None
    instruction: dict[str, Any] | None
    clause: Clause
    policy: Policy
    day: dt.date  # the day whose values were used: the original's for a correction
    values: tuple[ValueUsed, ...]
    working: Working
    order: dict[str, Any]  # where the decision was made in event-time order: its key, and late_by
    paid: int  # fen: the instruction's amount, else the decision's granted (negative: clawed back)
    paid_by: str  # "instruction" or "decision": where ``paid`` was read
    recomputed: int
    differences: tuple[Difference, ...]

    @property
    def record(self) -> dict[str, Any]:
        record = self.instruction or self.decision
        assert record is not None  # explain() needs one
        return record

    @property
    def event_ids(self) -> list[str]:
        """The events the record stands for: a clawback's original and its refund, else the one event."""
        if self.instruction is not None:
            return [str(event_id) for event_id in self.instruction.get("event_ids") or []]
        return [str(self.record.get("event_id"))]

    @property
    def reproduced(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        """Money as wire decimal strings, rates as written in the policy, counts as numbers."""
        record = self.record
        w = self.working
        working: dict[str, Any]
        if isinstance(w, PaymentWorking):
            working = {
                "kind": "payment",
                "base": _money(w.base),
                "refunded_before": format_fen(w.refunded_before),
                "net_base": _money(w.net_base),
                "rate": _rate(w.rate),
                "grade": w.grade,
                "entitlement": _money(w.entitlement),
                "caps": [{"cap": s.cap_id, "kind": s.kind, "scope": s.scope, "limit": _cap_figure(s.kind, s.limit),
                          "used_before": _cap_figure(s.kind, s.used_before), "room_before": _cap_figure(s.kind, s.room_before),
                          **({"adds": s.adds} if s.kind == "count" else {}),
                          "granted_before": format_fen(s.granted_before), "cut": format_fen(s.cut), "granted_after": format_fen(s.granted_after)}
                         for s in w.caps],
                "stopped_by": w.stopped_by,
                "granted": format_fen(w.granted),
            }
        elif isinstance(w, ClawbackWorking):
            working = {
                "kind": "clawback",
                "corrects_event": w.corrects_event,
                "corrects_instruction": w.corrects_instruction,
                "original_base": format_fen(w.original_base),
                "refunded_before": format_fen(w.refunded_before),
                "refund": format_fen(w.refund),
                "net_base": format_fen(w.net_base),
                "rate": _rate(w.rate),
                "entitlement": format_fen(w.entitlement),
                "granted_before": format_fen(w.granted_before),
                "granted_after": format_fen(w.granted_after),
                "clawback": format_fen(w.clawback),
                "superseded": w.superseded,
                "voided_by": w.voided_by,
                "releases": [{"cap": r.cap_id, "kind": r.kind, "scope": r.scope, "amount": _cap_figure(r.kind, r.amount)} for r in w.releases],
            }
        else:
            working = {"kind": "refund-recorded", "corrects_event": w.corrects_event, "refund": format_fen(w.refund), "refunded_total": format_fen(w.refunded_total)}
        return {
            "decision_id": self.decision["decision_id"] if self.decision else None,
            "instruction_id": self.instruction["instruction_id"] if self.instruction else None,
            "outcome": self.decision["outcome"] if self.decision else None,
            "policy": {"policy_id": record.get("policy_id"), "version": record.get("policy_version"), "file_version": self.policy.version},
            "clause": {"id": self.clause.id, "article": self.clause.article, "title": self.clause.title, "text": self.clause.text},
            "event": {"source": record.get("source"), "event_ids": self.event_ids, "occurred_at": record.get("occurred_at"),
                      "fiscal_year": record.get("fiscal_year")},
            "payee": record.get("payee"),
            "beneficiary": record.get("beneficiary"),
            "values_day": self.day.isoformat(),
            "values": [{"name": v.name, "value": v.value, "from": v.start.isoformat(), "basis": v.basis, "reference": v.reference} for v in self.values],
            "working": working,
            "order": self.order,
            "paid": format_fen(self.paid),
            "paid_by": self.paid_by,
            "recomputed": format_fen(self.recomputed),
            "reproduced": self.reproduced,
            "differences": [{"what": d.what, "recomputed": d.recomputed, "recorded": d.recorded} for d in self.differences],
        }


def explain(policy: Policy, *, decision: dict[str, Any] | None = None, instruction: dict[str, Any] | None = None,
            original: dict[str, Any] | None = None) -> Explanation:
    """Explain a decision, an instruction, or both of one claim. ``original`` is the decision of
    the payment a clawback or adjustment corrects: its day picks the rate, its caps the room released."""
    record = instruction or decision
    if record is None:
        raise ExplainError("nothing to explain: give a decision or an instruction")
    clause = policy.clauses.get(_text(record, "clause_id"))
    if clause is None:
        raise ExplainError(f"clause {record['clause_id']!r} is not in policy file {policy.policy_id} {policy.version}: "
                           "explain it with the policy file it was decided under (--policy FILE)")
    computation = _field(record, "computation")
    if not isinstance(computation, dict):
        raise ExplainError("the record's computation is not an object")
    # of programmes run together, the clause's own, and the caps it shares with the others' clauses
    caps = clause.caps + tuple(c.cap for c in policy.combined_caps if clause.id in c.clauses)
    policy = policy.programme_of(clause.id)
    checks = _Checks()
    checks.same("policy", f"{policy.policy_id} {policy.version}", f"{record.get('policy_id')} {record.get('policy_version')}")
    if decision is not None and instruction is not None:
        checks.same("decision and instruction computation", "the same", "the same" if decision.get("computation") == computation else "different")
    try:
        values, working, day = _work(policy, clause, caps, record, computation, original, checks)
        paid_by = "instruction" if instruction is not None else "decision"
        paid = parse_amount(_field(instruction, "amount") if instruction is not None else _field(record, "granted"))
        recomputed = working.granted if isinstance(working, PaymentWorking) else -working.clawback if isinstance(working, ClawbackWorking) else 0
        if decision is not None:
            if instruction is not None:
                checks.money("the decision's granted", recomputed, parse_amount(_field(decision, "granted")))
            _check_decision(decision, working, checks)
    except AmountError as error:
        raise ExplainError(f"the record holds an amount that is not money: {error}") from None
    differences = list(checks.found)
    if recomputed != paid:
        # the amount paid first: it is what the explanation is for
        differences.insert(0, Difference(f"amount paid (the {paid_by})", format_grouped(recomputed), format_grouped(paid)))
    order = _order(decision)
    return Explanation(decision, instruction, clause, policy, day, tuple(values), working, order, paid, paid_by, recomputed, tuple(differences))


def _order(decision: dict[str, Any] | None) -> dict[str, Any]:
    """A decision made in event-time order carries ``late_by`` (null when it took its place in the
    order, the duration it came too late otherwise); claims of a clause take budget by this key."""
    if decision is None or "late_by" not in decision:
        return {}
    return {"order_key": [decision.get("occurred_at"), decision.get("source"), decision.get("event_id")], "late_by": decision["late_by"]}


# --- the working ------------------------------------------------------------------------------


def _work(policy: Policy, clause: Clause, caps: tuple[Cap, ...], record: dict[str, Any], computation: dict[str, Any], original: dict[str, Any] | None,
          checks: _Checks) -> tuple[list[ValueUsed], Working, dt.date]:
    if "refunded_total" in computation:
        checks.money("granted", 0, _optional_money(computation.get("granted")))
        refund = RefundWorking(_corrects_event(record), _field_money(computation, "refund"), _field_money(computation, "refunded_total"))
        return [], refund, _day(policy, record)
    if "granted_before" in computation:
        if original is None:
            raise ExplainError(f"a correction of event {_corrects_event(record)!r}: the decision of the payment it corrects is needed (its day picks the rate)")
        day = _day(policy, original)
        values, working = _clawback(clause, day, record, computation, original, checks)
        return values, working, day
    day = _day(policy, record)
    checks.same("fiscal year", str(_fiscal_year(policy, record)), str(record.get("fiscal_year")))
    # who may be paid, from the parties the record names (the engine checks before any cap)
    parties = _Parties(payee=_field(record, "payee"), beneficiary=_field(record, "beneficiary"))
    # declined as another claim funds the project for as much or more (就高不重复): the funding
    # claim's amount is not in this record, the decision's reason names it
    funded_elsewhere = record.get("declined_by") == "funded-elsewhere"
    values, payment = _payment(clause, caps, day, computation, checks, ineligibility(policy, parties, day), funded_elsewhere)  # type: ignore[arg-type]
    return values, payment, day


@dataclass(frozen=True)
class _Parties:
    """What ``ineligibility`` reads of a claim."""

    payee: dict[str, str]
    beneficiary: dict[str, str]


def _payment(clause: Clause, caps: tuple[Cap, ...], day: dt.date, computation: dict[str, Any], checks: _Checks,
             ineligible: str | None = None, funded_elsewhere: bool = False) -> tuple[list[ValueUsed], PaymentWorking]:
    values = [_value("paid party", clause.paid_party, day, str)]
    entitlement_def = clause.entitlement
    base = _optional_money(computation.get("base"))
    refunded = _optional_money(computation.get("refunded_before_decision")) or 0
    grade = computation.get("grade")
    rate = None
    entitlement: int | None
    if entitlement_def.kind == "share":
        rate_entry = _in_force(entitlement_def.rate, day)
        rate = rate_entry.value if rate_entry else None
        values.append(_value("rate", entitlement_def.rate, day, str))
        checks.same("rate", _rate(rate), computation.get("rate"))
        if base is None:
            raise ExplainError(f"{clause.id} pays a share of a base, and the record's computation has no base")
        entitlement = rate.apply_floor(max(0, base - refunded)) if rate else None
    elif entitlement_def.kind == "fixed":
        values.append(_value("amount", entitlement_def.amount, day, format_grouped))
        entitlement = _at(entitlement_def.amount, day)
    else:
        by_grade = entitlement_def.grades.get(grade or "")
        dated = by_grade or entitlement_def.other_grades
        values.append(_value(f"amount for grade {grade}" if by_grade else f"amount for other grades ({grade})", dated, day, format_grouped))
        entitlement = _at(dated, day)
    checks.money("entitlement before caps", entitlement, _optional_money(computation.get("raw_entitlement")))

    recorded_steps = computation.get("caps")
    if not isinstance(recorded_steps, list):
        raise ExplainError("the record's computation has no list of caps")
    granted = entitlement or 0
    stopped_by = "not-in-force" if entitlement is None else "not-eligible" if ineligible else "nothing-to-pay" if entitlement == 0 else None
    if ineligible:
        granted = 0
    elif stopped_by is None and funded_elsewhere:
        granted, stopped_by = 0, "funded-elsewhere"
    steps: list[CapStep] = []
    for position, cap in enumerate(caps):
        limit_dated = cap.amount or cap.count
        values.append(_value(f"cap {cap.id}", limit_dated, day, format_grouped if cap.amount else str))
        if granted == 0:  # the engine stops at the first cap that leaves nothing
            continue
        limit = _at(limit_dated, day)
        if limit is None:
            granted, stopped_by = 0, "not-in-force"
            continue
        step = recorded_steps[position] if position < len(recorded_steps) else None
        if not isinstance(step, dict) or step.get("cap") != cap.id:
            checks.same(f"cap {cap.id}", "applied", "not in the record")
            granted, stopped_by = 0, stopped_by or cap.id
            continue
        applied = _apply(cap, limit, step, granted)
        _check_step(applied, step, checks)
        steps.append(applied)
        granted = applied.granted_after
        if applied.cut and stopped_by is None:
            stopped_by = cap.id
    for extra in recorded_steps[len(steps):]:
        # the engine records no cap after the grant reached 0 or a limit was not in force
        checks.same(f"cap {extra.get('cap') if isinstance(extra, dict) else extra}", "not applied", "applied")
    checks.money("granted", granted, _optional_money(computation.get("granted")))
    return values, PaymentWorking(base, refunded, rate, grade, entitlement, tuple(steps), stopped_by, granted)


def _apply(cap: Cap, limit: int, step: dict[str, Any], granted: int) -> CapStep:
    scope = str(step.get("scope"))
    if cap.amount is not None:
        used = _field_money(step, "used_before")
        room = max(0, limit - used)
        return CapStep(cap.id, "amount", scope, limit, used, room, 1, granted, min(granted, room))
    used = _field_int(step, "used_before")
    # whether a distinct cap had counted the subject already is an input of the record; a plain count cap always adds
    adds = _field_int(step, "adds") if cap.distinct else 1
    return CapStep(cap.id, "count", scope, limit, used, max(0, limit - used), adds, granted, 0 if adds and used >= limit else granted)


def _check_step(applied: CapStep, step: dict[str, Any], checks: _Checks) -> None:
    what = f"cap {applied.cap_id}"
    if applied.kind == "amount":
        checks.money(f"{what} limit", applied.limit, _optional_money(step.get("limit")))
        checks.money(f"{what} room before", applied.room_before, _optional_money(step.get("room_before")))
    else:
        checks.same(f"{what} limit", str(applied.limit), str(step.get("limit")))
        checks.same(f"{what} room before", str(applied.room_before), str(step.get("room_before")))
        checks.same(f"{what} adds", str(applied.adds), str(step.get("adds")))
    checks.money(f"{what} granted after", applied.granted_after, _optional_money(step.get("granted_after")))


def _clawback(clause: Clause, day: dt.date, record: dict[str, Any], computation: dict[str, Any], original: dict[str, Any],
              checks: _Checks) -> tuple[list[ValueUsed], ClawbackWorking]:
    base = _field_money(computation, "original_base")
    refunded_before = _field_money(computation, "refunded_before")
    refund = _field_money(computation, "refund")
    granted_before = _field_money(computation, "granted_before")
    original_computation = original.get("computation") or {}
    checks.money("the original's base", _optional_money(original_computation.get("base")), base)
    original_granted = _optional_money(original_computation.get("granted")) or 0
    if granted_before > original_granted:  # earlier clawbacks only lower it
        checks.same("granted before", f"at most {format_grouped(original_granted)}, the original's grant", format_grouped(granted_before))
    values = [_value("paid party", clause.paid_party, day, str)]
    rate = None
    if clause.entitlement.kind == "share":
        values.append(_value("rate", clause.entitlement.rate, day, str))
        rate = _at(clause.entitlement.rate, day)
    checks.same("rate", _rate(rate), computation.get("rate"))
    net = base - refunded_before - refund
    # a refund of nothing that claws back everything: an operator's void (rules.engine._void), which
    # says so, or else a supersession (rules.engine._supersede)
    voided_by = computation.get("void") if isinstance(computation.get("void"), dict) else None
    whole = refund == 0 and granted_before > 0 and _optional_money(computation.get("granted_after")) == 0
    superseded = whole and voided_by is None
    # a fixed or graded amount does not shrink with a refund; a superseded or voided payment is entitled to nothing
    entitlement = 0 if whole else rate.apply_floor(net) if rate else granted_before
    granted_after = min(granted_before, entitlement)
    clawback = granted_before - granted_after
    checks.money("net base", net, _optional_money(computation.get("net_base")))
    checks.money("entitlement on the net base", entitlement, _optional_money(computation.get("raw_entitlement")))
    checks.money("granted after", granted_after, _optional_money(computation.get("granted_after")))
    checks.money("clawback", clawback, _optional_money(computation.get("clawback")))
    # the original was charged to every cap it lists; a clawback gives room back under each
    charged = [step for step in original_computation.get("caps") or [] if isinstance(step, dict)] if clawback else []
    checks.same("caps released", json.dumps([step.get("scope") for step in charged], ensure_ascii=False),
                json.dumps(computation.get("caps_released"), ensure_ascii=False))
    releases = tuple(Release(str(step.get("cap")), str(step.get("kind")), str(step.get("scope")), _released(step, clawback, granted_after)) for step in charged)
    corrects_instruction = record.get("corrects") if "event_ids" in record else original.get("instruction_id")
    return values, ClawbackWorking(_corrects_event(record), corrects_instruction, base, refunded_before, refund, rate, entitlement,
                                   granted_before, granted_after, releases, superseded, voided_by)


def _released(step: dict[str, Any], clawback: int, granted_after: int) -> int:
    """Fen back under an amount cap; under a count cap the payment's place, only when all of it goes
    (under a distinct cap, when it was the subject's last paid claim: the record cannot tell)."""
    if step.get("kind") == "amount":
        return clawback
    return int(step.get("adds", 1)) if granted_after == 0 else 0


def _check_decision(decision: dict[str, Any], working: Working, checks: _Checks) -> None:
    """The decision's outcome, declined sum and declining cap, as the working gives them."""
    if isinstance(working, PaymentWorking):
        entitlement = working.entitlement or 0
        outcome = "granted" if working.granted and working.granted == entitlement else "partly-granted" if working.granted else "declined"
        checks.same("outcome", outcome, decision.get("outcome"))
        checks.money("declined", entitlement - working.granted, _optional_money(decision.get("declined")))
        checks.same("declined by", str(working.stopped_by), str(decision.get("declined_by")))
    elif isinstance(working, ClawbackWorking):
        checks.same("outcome", "clawed-back" if working.clawback else "adjusted", decision.get("outcome"))
    else:
        checks.same("outcome", "refund-recorded", decision.get("outcome"))


# --- reading records and the policy -----------------------------------------------------------


class _Checks:
    def __init__(self) -> None:
        self.found: list[Difference] = []

    def same(self, what: str, recomputed: str | None, recorded: Any) -> None:
        if recomputed != recorded:
            self.found.append(Difference(what, str(recomputed), str(recorded)))

    def money(self, what: str, recomputed: int | None, recorded: int | None) -> None:
        if recomputed != recorded:
            self.found.append(Difference(what, _grouped_or_none(recomputed), _grouped_or_none(recorded)))


def _in_force(dated: Dated[T] | None, day: dt.date) -> DatedValue[T] | None:
    """The dated entry in force on ``day`` (``Dated.at`` gives its value only)."""
    found = None
    for entry in dated.values if dated else ():
        if entry.start > day:
            break
        found = entry
    return found


def _at(dated: Dated[T] | None, day: dt.date) -> T | None:
    entry = _in_force(dated, day)
    return entry.value if entry else None


def _value(name: str, dated: Dated[T] | None, day: dt.date, shown: Callable[[T], str]) -> ValueUsed:
    entry = _in_force(dated, day)
    if entry is None:
        return ValueUsed(name, "none in force", day, "", "the policy has no value of it on that day")
    return ValueUsed(name, shown(entry.value), entry.start, entry.basis, entry.reference)


def _day(policy: Policy, record: dict[str, Any]) -> dt.date:
    return _local(policy, record).date()


def _fiscal_year(policy: Policy, record: dict[str, Any]) -> int:
    return _local(policy, record).year


def _local(policy: Policy, record: dict[str, Any]) -> dt.datetime:
    text = _text(record, "occurred_at")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ExplainError(f"occurred_at {text!r} of the record is not a time") from None
    if moment.tzinfo is None:
        raise ExplainError(f"occurred_at {text!r} of the record has no offset from UTC")
    return moment.astimezone(ZoneInfo(policy.timezone))


def _corrects_event(record: dict[str, Any]) -> str:
    """The event id a correction corrects: a decision names it, a clawback instruction lists it first."""
    if "event_ids" in record:
        return str(record["event_ids"][0])
    return _text(record, "corrects")


def _field(record: dict[str, Any], name: str) -> Any:
    if name not in record:
        raise ExplainError(f"the record has no {name!r}: not a decision or instruction the engine wrote")
    return record[name]


def _text(record: dict[str, Any], name: str) -> str:
    value = _field(record, name)
    if not isinstance(value, str):
        raise ExplainError(f"the record's {name!r} is not a text")
    return value


def _field_money(record: dict[str, Any], name: str) -> int:
    return parse_amount(_field(record, name))


def _field_int(record: dict[str, Any], name: str) -> int:
    value = _field(record, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExplainError(f"the record's {name!r} is not a whole number")
    return value


def _optional_money(value: Any) -> int | None:
    return None if value is None else parse_amount(value)


def _money(fen: int | None) -> str | None:
    return None if fen is None else format_fen(fen)


def _grouped_or_none(fen: int | None) -> str:
    return "none" if fen is None else format_grouped(fen)


def _rate(rate: Rate | None) -> str | None:
    return None if rate is None else str(rate)


def _cap_figure(kind: str, value: int) -> str | int:
    return format_fen(value) if kind == "amount" else value
