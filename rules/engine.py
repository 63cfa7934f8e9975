"""The allocation engine: a claim and the running state in, a decision (and a payment) out.

The running state is a flat key -> small JSON dict store, so the same engine runs over a
Python dict (replay) and over a Faust table (streams). Three kinds of entries:

* ``["claim", clause, source, event_id]``: what was decided for one event, so a repeat
  re-emits the same decision instead of deciding again, and a refund knows what it corrects;
* ``["cap", clause, cap, period, *who]``: what a running cap has used (``amount`` in fen,
  ``count`` of paid claims, or of distinct subjects for a ``distinct`` cap);
* ``["counted", clause, cap, period, *who, subject]``: paid claims of one subject under a
  ``distinct`` count cap, so a subject announced twice is counted once;
* ``["cap", "clause+clause", cap, period, *who]``: a cap several programmes' clauses share (issue 28),
  named by the clauses that share it, as the policy lists them;
* ``["project", group, beneficiary, project_ref]``: which claim funds a beneficiary's project
  under 就高不重复 (issue 28): the claim key of the one paid, the others being declined or clawed back;
* nothing else. Every entry is small and independent of how many events came before.

Invariants (checked with ``assert`` where they are cheap, and by the property tests):
a cap's used amount never exceeds its limit; granted = raw entitlement minus what the caps
declined; a claim's grant never goes below zero; ids are a pure function of policy, clause,
source and event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any, Literal, MutableMapping

from rules.eligibility import ineligibility
from rules.intake import Claim
from rules.money import Rate, format_fen
from rules.policy import Cap, Clause, CombinedCap, Policy
from rules.records import (
    AmountCapStep,
    CapStep,
    Computation,
    CorrectionComputation,
    CountCapStep,
    Decision,
    GrantComputation,
    Instruction,
    InstructionKind,
    OutcomeName,
    Party,
    RefundPendingComputation,
    VoidedBy,
)

State = MutableMapping[str, Any]

_ID_NAMESPACE = uuid.UUID("6f1c7a52-4b7e-5d2a-9c1e-8a3f0d2b6e41")

GRANTED: OutcomeName = "granted"
PARTLY: OutcomeName = "partly-granted"
DECLINED: OutcomeName = "declined"
CLAWED_BACK: OutcomeName = "clawed-back"
ADJUSTED: OutcomeName = "adjusted"
REFUND_RECORDED: OutcomeName = "refund-recorded"
FUNDED_ELSEWHERE = "funded-elsewhere"  # declined_by of a claim whose project another claim funds for as much or more


class _StableIds:
    """Deterministic ids of one kind under one clause: the same event always gets the same id.

    ``of(source, event_id)`` is exactly ``uuid.uuid5(_ID_NAMESPACE, "\x1f".join((kind, policy_id,
    clause_id, source, event_id))).hex``, computed without UUID objects and with the constant start
    of the name hashed once (ids were a fifth of the engine's time through uuid)."""

    __slots__ = ("_start",)

    def __init__(self, kind: str, policy_id: str, clause_id: str):
        self._start = hashlib.sha1(_ID_NAMESPACE.bytes + f"{kind}\x1f{policy_id}\x1f{clause_id}\x1f".encode())

    def of(self, source: str, event_id: str) -> str:
        digest = self._start.copy()
        digest.update((source + "\x1f" + event_id).encode())
        text = digest.hexdigest()
        # RFC 4122 fields of a version-5 UUID: version nibble 5, variant bits 10.
        return f"{text[:12]}5{text[13:16]}{_VARIANT_DIGIT[text[16]]}{text[17:32]}"


_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def state_key(*parts: str) -> str:
    """A JSON list as text, identical to ``json.dumps(parts, ensure_ascii=False)``, built with the
    C string encoder directly: key building was a third of the engine's time through json.dumps."""
    return "[" + ", ".join(map(encode_basestring, parts)) + "]"


def claim_key(clause_id: str, source: str, event_id: str) -> str:
    return state_key("claim", clause_id, source, event_id)


def project_key(group: str, beneficiary_id: str, project_ref: str) -> str:
    return state_key("project", group, beneficiary_id, project_ref)


def _who(cap_fields: tuple[str | None, ...], claim: Claim) -> list[str]:
    return [claim.beneficiary["id"] if name == "beneficiary" else (claim.subject or "") for name in cap_fields]


def counted_key(clause: Clause, cap: Cap, claim: Claim) -> str:
    """For a cap counting distinct subjects: how many paid claims this subject has in the cap's scope."""
    period = str(claim.fiscal_year) if cap.period == "fiscal-year" else "ever"
    return state_key("counted", clause.id, cap.id, period, *_who(cap.per, claim), *_who((cap.distinct,), claim))


_UNUSED = {"amount": 0, "count": 0}


@dataclass(frozen=True, slots=True)
class _Terms:
    """A clause's figures in force on one day."""

    day: dt.date
    rate: Rate | None  # of a share entitlement
    rate_text: str | None
    amount: int | None  # of a fixed entitlement
    limits: tuple[tuple[int | None, str | None], ...]  # per cap: (limit, formatted limit of an amount cap)


class _CapPlan:
    """One cap of a clause, with the constant start of its scope keys encoded once."""

    __slots__ = ("cap", "_scope_prefix", "_yearly", "_per", "_by_beneficiary", "_by_subject", "_scopes")
    _MAX_SCOPES = 1 << 14  # cached keys; beyond it the cache starts afresh

    def __init__(self, owner: str, cap: Cap):
        """``owner``: the clause's id, or the ids of the clauses sharing a combined cap joined by ``+``."""
        self.cap = cap
        self._scope_prefix = "[" + ", ".join(map(encode_basestring, ("cap", owner, cap.id))) + ", "
        self._yearly = cap.period == "fiscal-year"
        self._per = cap.per
        self._by_beneficiary = "beneficiary" in cap.per
        self._by_subject = "subject" in cap.per
        self._scopes: dict[tuple[int, str | None, str | None], str] = {}

    def scope(self, claim: Claim) -> str:
        """The key of the cap's running usage: ``state_key("cap", clause, cap, period, *who)``.

        Cached by exactly what the key depends on: the same payees come back all year, and
        building a key took 1.6 µs of the engine's ~20 µs a claim (0.7 µs cached). WHY not by
        (year, beneficiary, subject) for every cap: a programme cap then held one entry per
        payee, all the same key (a generated year: 2,805 entries for 2,012 keys), and a
        worker's memory grew with them (seen with tracemalloc in a soak)."""
        inputs = (claim.fiscal_year if self._yearly else 0,
                  claim.beneficiary["id"] if self._by_beneficiary else None,
                  (claim.subject or "") if self._by_subject else None)
        scope = self._scopes.get(inputs)
        if scope is None:
            if len(self._scopes) >= self._MAX_SCOPES:
                self._scopes.clear()
            period = encode_basestring(str(claim.fiscal_year)) if self._yearly else '"ever"'
            scope = self._scopes[inputs] = self._scope_prefix + ", ".join([period, *map(encode_basestring, _who(self._per, claim))]) + "]"
        return scope


class _ClausePlan:
    """One clause of a policy, with what its claims need looked up once instead of per claim."""

    __slots__ = ("clause", "programme", "caps", "decision_ids", "instruction_ids", "supersession_ids", "supersession_instruction_ids",
                 "_claim_key_prefix", "_terms_by_day")
    _MAX_DAYS = 10_000  # decades of days; a clause that sees more starts its cache afresh

    def __init__(self, policy: Policy, clause: Clause, combined: tuple[CombinedCap, ...] = ()):
        self.clause = clause
        self.programme = programme = policy.programme_of(clause.id)
        # its own caps, then the caps it shares with other programmes' clauses
        self.caps = tuple(_CapPlan(clause.id, cap) for cap in clause.caps) + tuple(_CapPlan("+".join(c.clauses), c.cap) for c in combined)
        self.decision_ids = _StableIds("decision", programme.policy_id, clause.id)
        self.instruction_ids = _StableIds("instruction", programme.policy_id, clause.id)
        # a payment of this clause clawed back because a claim elsewhere funds its project for more
        self.supersession_ids = _StableIds("supersession", programme.policy_id, clause.id)
        self.supersession_instruction_ids = _StableIds("supersession-instruction", programme.policy_id, clause.id)
        self._claim_key_prefix = "[" + ", ".join(map(encode_basestring, ("claim", clause.id))) + ", "
        self._terms_by_day: dict[str, _Terms] = {}

    def claim_key(self, source: str, event_id: str) -> str:
        """Exactly ``claim_key(clause.id, source, event_id)``."""
        return self._claim_key_prefix + encode_basestring(source) + ", " + encode_basestring(event_id) + "]"

    def terms(self, day_text: str) -> _Terms:
        terms = self._terms_by_day.get(day_text)
        if terms is None:
            if len(self._terms_by_day) >= self._MAX_DAYS:
                self._terms_by_day.clear()
            terms = self._terms_by_day[day_text] = self._terms_on(dt.date.fromisoformat(day_text))
        return terms

    def _terms_on(self, day: dt.date) -> _Terms:
        entitlement = self.clause.entitlement
        rate = entitlement.rate.at(day) if entitlement.kind == "share" and entitlement.rate else None
        amount = entitlement.amount.at(day) if entitlement.kind == "fixed" and entitlement.amount else None
        limits = []
        for cap in (plan.cap for plan in self.caps):
            if cap.amount is not None:
                limit = cap.amount.at(day)
                limits.append((limit, None if limit is None else format_fen(limit)))
            else:
                limits.append((cap.count.at(day) if cap.count else None, None))
        return _Terms(day, rate, None if rate is None else str(rate), amount, tuple(limits))


# Plans per policy, shared by every Engine over it (the stream workers build one Engine per
# claim). A policy is immutable, so a plan never goes stale; the policy is kept with its plan
# so that its id cannot be reused while the entry exists.
_PLANS: dict[int, tuple[Policy, dict[str, _ClausePlan]]] = {}
_MAX_POLICIES = 16  # tests and tools parse many policies; a worker or a replay uses one


def _plans(policy: Policy) -> dict[str, _ClausePlan]:
    entry = _PLANS.get(id(policy))
    if entry is None or entry[0] is not policy:
        if len(_PLANS) >= _MAX_POLICIES:
            _PLANS.clear()
        entry = _PLANS[id(policy)] = (policy, {
            clause_id: _ClausePlan(policy, clause, tuple(c for c in policy.combined_caps if clause_id in c.clauses))
            for clause_id, clause in policy.clauses.items()
        })
    return entry[1]


def instruction_id_of(policy: Policy, clause_id: str, source: str, event_id: str) -> str:
    """The id of the payment an event is paid with under a clause (what a ``payment-voids``
    message names): a pure function of the programme, the clause, the source and the event."""
    return _plans(policy)[clause_id].instruction_ids.of(source, event_id)


@dataclass(slots=True)
class Outcome:
    """What one claim produced. Exactly one of ``decisions`` or ``rejection`` is set."""

    decisions: list[Decision] = field(default_factory=list)
    instructions: list[Instruction] = field(default_factory=list)
    rejection: tuple[str, str] | None = None  # (code, reason)
    duplicate: bool = False


class Engine:
    """Decides claims under ``policy``: one programme, or several run together (``rules.policy.combine``)."""

    def __init__(self, policy: Policy, state: State):
        self.policy = policy
        self.state = state
        self._plans = _plans(policy)

    # -- entry point ---------------------------------------------------------------------

    def decide(self, claim: Claim, late_by: str | None = None) -> Outcome:
        """``late_by``: for a claim that came after its clause's allowed lateness (rules.event_time),
        how late, as an ISO 8601 duration; its decision carries it."""
        plan = self._plans.get(claim.clause_id)
        if plan is None:
            return Outcome(rejection=("unknown-clause", f"clause {claim.clause_id!r} is not in policy {self.policy.policy_id} {self.policy.version}"))
        key = plan.claim_key(claim.source, claim.event_id)
        record = self.state.get(key)
        if record is not None and "decision" in record:
            return self._repeat(plan, claim, record)
        if claim.voids is not None:
            return self._void(plan, claim, key, late_by)
        if claim.corrects is not None:
            return self._correct(plan, claim, key, late_by)
        return self._grant(plan, claim, key, record, late_by)

    # -- a repeat of an event already decided -------------------------------------------

    def _repeat(self, plan: _ClausePlan, claim: Claim, record: dict[str, Any]) -> Outcome:
        if record["fingerprint"] != claim.fingerprint:
            return Outcome(
                rejection=(
                    "event-id-reused",
                    f"event_id {claim.event_id!r} from {claim.source!r} was already decided "
                    f"(decision {record['decision']['decision_id']}) with different content; "
                    "an event_id is never reused: publish a new event, or a refund/credit note to correct one",
                )
            )
        # Read back from the wire form the state keeps: re-emitted byte for byte.
        decisions = [Decision.from_wire(wire) for wire in (*record.get("supersedes", ()), record["decision"])]
        instructions = [Instruction.from_wire(i) for i in record["instructions"]]
        # A claim decided before is re-emitted in the order it is read again, which after a restart
        # may put a clawback ahead of its payment (a void or a 就高不重复 claim read from another
        # topic, a refund read before its purchase): its payment's decision and instruction go
        # first, as the ledger books a clawback only after the payment it corrects.
        paid = self.state.get(self._clawed_back_claim(plan, claim, record) or "")
        if paid is not None and paid.get("instruction_id") is not None:
            decisions.insert(0, Decision.from_wire(paid["decision"]))
            instructions[:0] = [Instruction.from_wire(i) for i in paid["instructions"] if i["instruction_id"] == paid["instruction_id"]]
        return Outcome(decisions=decisions, instructions=instructions, duplicate=True)

    @staticmethod
    def _clawed_back_claim(plan: _ClausePlan, claim: Claim, record: dict[str, Any]) -> str | None:
        """The state key of the claim whose payment the record's clawback corrects, if it made one."""
        if not any(i["kind"] == "clawback" for i in record["instructions"]):
            return None
        if "clawback_of" in record:  # a void's, or a supersession's
            return str(record["clawback_of"])
        return plan.claim_key(claim.source, record["corrects"]) if record.get("corrects") else None  # a refund's

    # -- a purchase, invoice, closing or announcement ------------------------------------

    def _raw_entitlement(self, clause: Clause, claim: Claim, terms: _Terms, base: int | None) -> tuple[int | None, str]:
        entitlement = clause.entitlement
        if entitlement.kind == "share":
            if terms.rate is None:
                return None, f"{clause.id} has no rate in force on {terms.day}"
            return terms.rate.apply_floor(base or 0), ""
        if entitlement.kind == "fixed":
            amount = terms.amount
            return amount, "" if amount is not None else f"{clause.id} has no amount in force on {terms.day}"
        dated = entitlement.grades.get(claim.grade or "", entitlement.other_grades)
        amount = dated.at(terms.day) if dated else None
        return amount, "" if amount is not None else f"{clause.id} has no amount for grade {claim.grade!r} in force on {terms.day}"

    def _grant(self, plan: _ClausePlan, claim: Claim, key: str, pending: dict[str, Any] | None, late_by: str | None) -> Outcome:
        clause = plan.clause
        state = self.state
        terms = plan.terms(claim.day)
        rate = terms.rate
        refunded = pending["refunded"] if pending else 0
        base = None if claim.base is None else max(0, claim.base - refunded)
        raw, not_in_force = self._raw_entitlement(clause, claim, terms, base)
        steps: list[CapStep] = []
        # (scope, its usage read before, adds to its count, distinct marker, the marker's count before)
        charges: list[tuple[str, dict[str, int], int, str | None, int]] = []
        declined_by = None
        reason = ""
        granted = 0
        ineligible = ineligibility(plan.programme, claim, terms.day)
        project = self._project(clause, claim)
        funder = self._funder(project, key)
        released: dict[str, Any] = {}
        if raw is None:
            declined_by, reason = "not-in-force", not_in_force
        elif ineligible is not None:
            declined_by, reason = "not-eligible", ineligible
        elif raw == 0:
            declined_by, reason = "nothing-to-pay", "the entitlement is 0.00" + (" after refunds" if refunded else "")
        elif funder is not None and raw <= funder[1]["granted"]:
            declined_by, reason = FUNDED_ELSEWHERE, self._funded_elsewhere(claim, funder[1], raw)
        else:
            if funder is not None:  # what the funding claim holds under shared caps is free to this one, should it pay more
                released = self._release_tentatively(funder[1])
            granted = raw
            for cap_plan, (limit, limit_text) in zip(plan.caps, terms.limits):
                cap = cap_plan.cap
                scope = cap_plan.scope(claim)
                used = state.get(scope) or _UNUSED
                if limit is None:
                    granted, declined_by, reason = 0, "not-in-force", f"cap {cap.id} of {clause.id} has no value in force on {terms.day}"
                    break
                if cap.amount is not None:
                    used_amount = used["amount"]
                    room = max(0, limit - used_amount)
                    if room < granted:
                        granted = room
                        if declined_by is None:
                            declined_by = cap.id
                            reason = f"cap {cap.id} ({limit_text}) had {format_fen(room)} left"
                    steps.append(AmountCapStep(cap=cap.id, scope=scope, limit=limit, used_before=used_amount, room_before=room, granted_after=granted))
                    charges.append((scope, used, 1, None, 0))
                else:
                    marker = counted_key(clause, cap, claim) if cap.distinct else None
                    counted_before = (state.get(marker) or _UNUSED)["count"] if marker else 0
                    adds: Literal[0, 1] = 0 if marker and counted_before > 0 else 1
                    used_count = used["count"]
                    if adds and used_count >= limit:
                        granted = 0
                        if declined_by is None:
                            declined_by = cap.id
                            counted = f"distinct {cap.distinct}s" if cap.distinct else "paid claim(s)"
                            reason = f"cap {cap.id} allows {limit} {counted} and {used_count} already paid"
                    steps.append(CountCapStep(cap=cap.id, scope=scope, limit=limit, used_before=used_count, room_before=max(0, limit - used_count), adds=adds, granted_after=granted))
                    charges.append((scope, used, adds, marker, counted_before))
                if granted == 0:
                    break
            if funder is not None and granted <= funder[1]["granted"]:  # the caps leave it no more than the funding claim's
                self.state.update(released)
                granted, declined_by, reason, steps = 0, FUNDED_ELSEWHERE, self._funded_elsewhere(claim, funder[1], granted), []
        charged = []
        if granted > 0:
            for scope, used, place, marker, counted_before in charges:
                state[scope] = {"amount": used["amount"] + granted, "count": used["count"] + place}
                if marker:
                    state[marker] = {"amount": 0, "count": counted_before + 1}
                charged.append([scope, place, marker])
        assert 0 <= granted <= (raw or 0), (granted, raw)
        outcome = GRANTED if granted and granted == raw else PARTLY if granted else DECLINED
        computation = GrantComputation(
            base=claim.base, refunded_before_decision=refunded or None, rate=terms.rate_text, grade=claim.grade, raw_entitlement=raw, caps=tuple(steps), granted=granted,
        )
        instruction_id = plan.instruction_ids.of(claim.source, claim.event_id) if granted else None
        supersedes: list[Decision] = []
        instructions = []
        if funder is not None and granted:
            clawback, clawback_instruction = self._supersede(funder, claim, plan.decision_ids.of(claim.source, claim.event_id), late_by)
            supersedes.append(clawback)
            instructions.append(clawback_instruction)
            reason = "; ".join(filter(None, (reason, f"pays more than decision {funder[1]['decision']['decision_id']} "
                                                      f"({funder[1]['decision']['clause_id']}), which is clawed back by decision {clawback.decision_id} (就高不重复)")))
        if project is not None and granted:
            state[project] = {"claim": key}
        decision = self._decision(
            plan, claim, fiscal_year=claim.fiscal_year, outcome=outcome, payee=Party.from_wire(claim.payee), granted=granted, declined=(raw or 0) - granted,
            declined_by=declined_by, reason=reason, computation=computation, instruction_id=instruction_id, late_by=late_by,
        )
        if instruction_id is not None:
            instructions.append(_instruction(decision, instruction_id=instruction_id, kind="payment", computation=computation, corrects=None, event_ids=(claim.event_id,)))
        state[key] = {
            "fingerprint": claim.fingerprint,
            "decision": decision.to_wire(),
            "instructions": [instruction.to_wire() for instruction in instructions],
            "base": claim.base,
            "refunded": refunded,
            "rate": [rate.numerator, rate.denominator] if rate else None,
            "granted": granted,
            "charged": charged,
            "fiscal_year": claim.fiscal_year,
            "payee": claim.payee,
            "instruction_id": instruction_id,
            **({"supersedes": [d.to_wire() for d in supersedes], "clawback_of": funder[0]} if supersedes and funder is not None else {}),
        }
        return Outcome(decisions=[*supersedes, decision], instructions=instructions)

    # -- 就高不重复: one project funded once, under the clause that pays most (issue 28) ------

    def _project(self, clause: Clause, claim: Claim) -> str | None:
        """The state key of the claim's project, if its clause is in a project group and it names one.
        A project is the beneficiary's: a compute voucher paid to the provider funds the buyer's project."""
        if clause.project_group is None or claim.project_ref is None:
            return None
        return project_key(clause.project_group, claim.beneficiary["id"], claim.project_ref)

    def _funder(self, project: str | None, key: str) -> tuple[str, dict[str, Any]] | None:
        """The other claim that funds the project now (key and record), if one does."""
        pointer = self.state.get(project) if project is not None else None
        if pointer is None or pointer["claim"] == key:
            return None
        record = self.state[pointer["claim"]]
        return (pointer["claim"], record) if record["granted"] > 0 else None

    @staticmethod
    def _funded_elsewhere(claim: Claim, funding: dict[str, Any], would_pay: int) -> str:
        decision = funding["decision"]
        return (f"project {claim.project_ref!r} of {claim.beneficiary['id']} is funded by decision {decision['decision_id']} "
                f"({decision['policy_id']} {decision['clause_id']}, {format_fen(funding['granted'])}); this claim would pay "
                f"{format_fen(would_pay)}, not more, and one project is funded once (就高不重复)")

    def _release_tentatively(self, funding: dict[str, Any]) -> dict[str, Any]:
        """Give back the funding claim's caps, as its clawback would; returns the entries as they
        were, to restore should the new claim not pay more after all."""
        before = {name: self.state[name] for scope, _, marker in funding["charged"] for name in (scope, marker) if name}
        self._release(funding["charged"], funding["granted"], whole=True)
        return before

    def _supersede(self, funder: tuple[str, dict[str, Any]], claim: Claim, by_decision: str, late_by: str | None) -> tuple[Decision, Instruction]:
        """Claw back the whole payment of the claim that funded the project: its caps were released
        already (``_release_tentatively``); a decision of its clause and year, naming the one that pays more."""
        key, funding = funder
        decision_wire = funding["decision"]
        plan = self._plans[decision_wire["clause_id"]]
        clawback = funding["granted"]
        base = funding["base"] or 0
        rate = Rate(*funding["rate"]) if funding["rate"] else None
        computation = CorrectionComputation(
            original_base=base, refunded_before=funding["refunded"], refund=0, net_base=base - funding["refunded"], rate=str(rate) if rate else None,
            raw_entitlement=0, granted_before=clawback, granted_after=0, clawback=clawback,
            caps_released=tuple(scope for scope, _, _ in funding["charged"]),
        )
        instruction_id = plan.supersession_instruction_ids.of(claim.source, claim.event_id)
        reason = (f"project {claim.project_ref!r} of {claim.beneficiary['id']} is now funded by decision {by_decision} ({claim.clause_id}), "
                  f"which pays more; the {format_fen(clawback)} of decision {decision_wire['decision_id']} is clawed back (就高不重复)")
        decision = self._decision(
            plan, claim, fiscal_year=funding["fiscal_year"], outcome=CLAWED_BACK, payee=Party.from_wire(funding["payee"]), granted=-clawback, declined=0,
            declined_by=None, reason=reason, computation=computation, instruction_id=instruction_id, late_by=late_by,
            decision_id=plan.supersession_ids.of(claim.source, claim.event_id), corrects=decision_wire["event_id"],
        )
        instruction = _instruction(decision, instruction_id=instruction_id, kind="clawback", computation=computation, corrects=funding["instruction_id"],
                                   event_ids=(decision_wire["event_id"], claim.event_id))
        self.state[key] = {**funding, "granted": 0, "charged": []}
        return decision, instruction

    # -- a refund or credit note ---------------------------------------------------------

    def _correct(self, plan: _ClausePlan, claim: Claim, key: str, late_by: str | None) -> Outcome:
        assert claim.corrects is not None  # decide() brings only corrections here
        original_key = plan.claim_key(claim.source, claim.corrects)
        original = self.state.get(original_key)
        refund = claim.base or 0
        if original is not None and original.get("corrects") is not None:
            return Outcome(rejection=("corrects-a-correction", f"{claim.corrects!r} is itself a refund/credit note; name the original purchase or invoice"))
        if original is None or "decision" not in original:
            # The original has not arrived yet (streams reorder across sources and retries).
            # Remember the refunded sum on the original's key; its decision will net it out.
            refunded = (original or {}).get("refunded", 0) + refund
            self.state[original_key] = {"refunded": refunded}
            reason = f"original event {claim.corrects!r} not decided yet; its entitlement will be computed net of this refund"
            decision = self._decision(
                plan, claim, fiscal_year=claim.fiscal_year, outcome=REFUND_RECORDED, payee=Party.from_wire(claim.payee), granted=0, declined=0,
                declined_by=None, reason=reason, computation=RefundPendingComputation(refund=refund, refunded_total=refunded), instruction_id=None, late_by=late_by,
            )
            self.state[key] = {"fingerprint": claim.fingerprint, "decision": decision.to_wire(), "instructions": [], "corrects": claim.corrects}
            return Outcome(decisions=[decision])
        base = original["base"] or 0
        refunded = original["refunded"] + refund
        if refunded > base:
            return Outcome(
                rejection=(
                    "refund-exceeds-original",
                    f"refunds of {claim.corrects!r} would total {format_fen(refunded)}, more than its amount {format_fen(base)}",
                )
            )
        granted_before = original["granted"]
        rate = Rate(*original["rate"]) if original["rate"] else None
        entitled = rate.apply_floor(base - refunded) if rate else granted_before
        granted_after = min(granted_before, entitled)
        clawback = granted_before - granted_after
        if clawback:
            self._release(original["charged"], clawback, whole=granted_after == 0)
        computation = CorrectionComputation(
            original_base=base, refunded_before=original["refunded"], refund=refund, net_base=base - refunded, rate=str(rate) if rate else None,
            raw_entitlement=entitled, granted_before=granted_before, granted_after=granted_after, clawback=clawback,
            caps_released=tuple(scope for scope, _, _ in original["charged"]) if clawback else (),
        )
        instruction_id = plan.instruction_ids.of(claim.source, claim.event_id) if clawback else None
        if clawback:
            reason = f"refund of {format_fen(refund)} lowers the entitlement of {claim.corrects!r} to {format_fen(granted_after)}; {format_fen(clawback)} is clawed back"
        else:
            reason = f"refund of {format_fen(refund)} leaves the entitlement of {claim.corrects!r} at or above what was granted; nothing to claw back"
        # The clawback belongs to the fiscal year whose budget paid the original.
        fiscal_year = original["fiscal_year"]
        decision = self._decision(
            plan, claim, fiscal_year=fiscal_year, outcome=CLAWED_BACK if clawback else ADJUSTED, payee=Party.from_wire(original["payee"]), granted=-clawback, declined=0,
            declined_by=None, reason=reason, computation=computation, instruction_id=instruction_id, late_by=late_by,
        )
        instructions = []
        if instruction_id is not None:
            instructions.append(
                _instruction(decision, instruction_id=instruction_id, kind="clawback", computation=computation, corrects=original["instruction_id"], event_ids=(claim.corrects, claim.event_id))
            )
        self.state[original_key] = {**original, "refunded": refunded, "granted": granted_after, "charged": original["charged"] if granted_after else []}
        self.state[key] = {"fingerprint": claim.fingerprint, "decision": decision.to_wire(), "instructions": [i.to_wire() for i in instructions], "corrects": claim.corrects}
        return Outcome(decisions=[decision], instructions=instructions)

    # -- an operator's void of a payment not yet paid out (topic payment-voids) -----------------

    def _void(self, plan: _ClausePlan, claim: Claim, key: str, late_by: str | None) -> Outcome:
        """Withdraw what a payment still grants: a whole clawback that gives its room back under
        every cap it charged, so that later claims of the clause may take it."""
        assert claim.voids is not None  # decide() brings only voids here
        voids = claim.voids
        payment_id, event_id = voids["instruction_id"], voids["event_id"]
        original = self.state.get(plan.claim_key(voids["source"], event_id))
        if (original is None or original.get("instruction_id") is None or original["instruction_id"] != payment_id
                or original["payee"]["id"] != claim.payee["id"]):
            return Outcome(rejection=("unknown-payment", f"{payment_id} is not a payment of event {event_id!r} from {voids['source']!r} under {plan.clause.id} "
                                                         f"to {claim.payee['id']}: `subsidy payments status` lists the payments"))
        granted = original["granted"]
        if granted == 0:
            return Outcome(rejection=("nothing-to-void", f"payment {payment_id} grants nothing any more: it was voided, clawed back whole or "
                                                         "superseded (就高不重复) before; `subsidy explain` shows its decisions"))
        self._release(original["charged"], granted, whole=True)
        base = original["base"] or 0
        rate = Rate(*original["rate"]) if original["rate"] else None
        computation = CorrectionComputation(
            original_base=base, refunded_before=original["refunded"], refund=0, net_base=base - original["refunded"], rate=str(rate) if rate else None,
            raw_entitlement=0, granted_before=granted, granted_after=0, clawback=granted,
            caps_released=tuple(scope for scope, _, _ in original["charged"]), void=VoidedBy(voids["operator"], voids["reason"]),
        )
        instruction_id = plan.instruction_ids.of(claim.source, claim.event_id)
        decision = self._decision(
            plan, claim, fiscal_year=original["fiscal_year"], outcome=CLAWED_BACK, payee=Party.from_wire(original["payee"]), granted=-granted, declined=0,
            declined_by=None, reason=f"voided by {voids['operator']}: {voids['reason']}; its {format_fen(granted)} goes back under every cap it charged",
            computation=computation, instruction_id=instruction_id, late_by=late_by, corrects=event_id,
            beneficiary=Party.from_wire(original["decision"]["beneficiary"]),
        )
        instruction = _instruction(decision, instruction_id=instruction_id, kind="clawback", computation=computation, corrects=payment_id,
                                   event_ids=(event_id, claim.event_id))
        self.state[plan.claim_key(voids["source"], event_id)] = {**original, "granted": 0, "charged": []}
        self.state[key] = {"fingerprint": claim.fingerprint, "decision": decision.to_wire(), "instructions": [instruction.to_wire()],
                           "clawback_of": plan.claim_key(voids["source"], event_id)}
        return Outcome(decisions=[decision], instructions=[instruction])

    def _release(self, charged: list[list[Any]], clawback: int, whole: bool) -> None:
        """Give back room under every cap a payment was charged to; a whole clawback also
        gives back its place under count caps (a distinct subject's only when its last claim goes)."""
        for scope, adds, marker in charged:
            used = self.state[scope]
            uncount = 0
            if whole and marker:
                left = self.state[marker]["count"] - 1
                self.state[marker] = {"amount": 0, "count": left}
                uncount = 1 if left == 0 else 0
            elif whole:
                uncount = adds
            released = {"amount": used["amount"] - clawback, "count": used["count"] - uncount}
            assert released["amount"] >= 0 and released["count"] >= 0, (scope, used, clawback)
            self.state[scope] = released

    # -- records -------------------------------------------------------------------------

    def _decision(
        self, plan: _ClausePlan, claim: Claim, *, fiscal_year: int, outcome: OutcomeName, payee: Party, granted: int, declined: int,
        declined_by: str | None, reason: str, computation: Computation, instruction_id: str | None, late_by: str | None,
        decision_id: str | None = None, corrects: str | None = None, beneficiary: Party | None = None,
    ) -> Decision:
        """The claim's decision: what the claim and the policy say, and what the caller decided.
        ``decision_id`` and ``corrects``: of a supersession, which is the claim's decision about another's payment."""
        return Decision(
            decision_id=decision_id or plan.decision_ids.of(claim.source, claim.event_id),
            event_id=claim.event_id,
            source=claim.source,
            topic=claim.topic,
            occurred_at=claim.occurred_at,
            policy_id=plan.programme.policy_id,
            policy_version=plan.programme.version,
            clause_id=plan.clause.id,
            fiscal_year=fiscal_year,
            outcome=outcome,
            payee=payee,
            beneficiary=beneficiary or Party.from_wire(claim.beneficiary),
            granted=granted,
            declined=declined,
            declined_by=declined_by,
            reason=reason,
            corrects=corrects or claim.corrects,
            computation=computation,
            instruction_id=instruction_id,
            late_by=late_by,
        )


def _instruction(
    decision: Decision, *, instruction_id: str, kind: InstructionKind, computation: GrantComputation | CorrectionComputation, corrects: str | None, event_ids: tuple[str, ...],
) -> Instruction:
    """The money a decision moves: its granted amount to its payee, under its clause and fiscal year."""
    return Instruction(
        instruction_id=instruction_id,
        kind=kind,
        payee=decision.payee,
        beneficiary=decision.beneficiary,
        amount=decision.granted,
        policy_id=decision.policy_id,
        policy_version=decision.policy_version,
        clause_id=decision.clause_id,
        fiscal_year=decision.fiscal_year,
        event_ids=event_ids,
        source=decision.source,
        occurred_at=decision.occurred_at,
        corrects=corrects,
        computation=computation,
    )
