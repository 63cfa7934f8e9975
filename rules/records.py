"""The engine's outputs as typed, immutable records: a decision and the instruction it pays.

Built by the engine with named fields; amounts are ``int`` fen. ``to_wire()`` gives the record
as the wire contract publishes it (``schemas/outputs.py``: amounts as "1234.50" text, lists for
sequences), with the contract's keys in the contract's order, so its JSON is byte for byte the
record the engine emitted before these types existed; the dict is built once and shared (copy
it before changing it). The state stores that wire form, and ``from_wire`` reads it back when a
redelivered claim re-emits its stored outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, TypeAlias

from rules.money import format_fen, parse_amount

OutcomeName = Literal["granted", "partly-granted", "declined", "clawed-back", "adjusted", "refund-recorded"]
PartyKind = Literal["enterprise", "person", "team"]
InstructionKind = Literal["payment", "clawback"]


def _fen_or_none(fen: int | None) -> str | None:
    return None if fen is None else format_fen(fen)


def _amount_or_none(text: str | None) -> int | None:
    return None if text is None else parse_amount(text)


class _WireOnce:
    """A record whose wire form is built on the first ``to_wire()`` and kept: the engine's state
    and the output topic both take it, and a decision and its instruction share a computation."""

    __slots__ = ()
    _wire: dict[str, Any] | None

    def _build_wire(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_wire(self) -> dict[str, Any]:
        """The record as the contract publishes it; the dict is shared, so copy it before changing it."""
        wire = self._wire
        if wire is None:
            wire = self._build_wire()
            object.__setattr__(self, "_wire", wire)  # a cache, not a field: the record stays immutable
        return wire


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """Who is paid (payee) or whom a claim is about (beneficiary)."""

    id: str
    kind: PartyKind
    name: str

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "name": self.name}

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Party:
        return cls(id=wire["id"], kind=wire["kind"], name=wire["name"])


@dataclass(frozen=True, slots=True, kw_only=True)
class AmountCapStep:
    """A money cap applied to a grant: its limit, what it had used and what it left."""

    cap: str
    scope: str
    kind: Literal["amount"] = "amount"
    limit: int
    used_before: int
    room_before: int
    granted_after: int

    def to_wire(self) -> dict[str, Any]:
        return {"cap": self.cap, "scope": self.scope, "kind": self.kind, "limit": format_fen(self.limit), "used_before": format_fen(self.used_before),
                "room_before": format_fen(self.room_before), "granted_after": format_fen(self.granted_after)}

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> AmountCapStep:
        return cls(cap=wire["cap"], scope=wire["scope"], limit=parse_amount(wire["limit"]), used_before=parse_amount(wire["used_before"]),
                   room_before=parse_amount(wire["room_before"]), granted_after=parse_amount(wire["granted_after"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class CountCapStep:
    """A cap on the number of paid claims; ``adds`` is 0 for a subject a distinct cap already counted."""

    cap: str
    scope: str
    kind: Literal["count"] = "count"
    limit: int
    used_before: int
    room_before: int
    adds: Literal[0, 1]
    granted_after: int  # fen

    def to_wire(self) -> dict[str, Any]:
        return {"cap": self.cap, "scope": self.scope, "kind": self.kind, "limit": self.limit, "used_before": self.used_before,
                "room_before": self.room_before, "adds": self.adds, "granted_after": format_fen(self.granted_after)}

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> CountCapStep:
        return cls(cap=wire["cap"], scope=wire["scope"], limit=wire["limit"], used_before=wire["used_before"], room_before=wire["room_before"],
                   adds=wire["adds"], granted_after=parse_amount(wire["granted_after"]))


CapStep: TypeAlias = AmountCapStep | CountCapStep


def _cap_step_from_wire(wire: Mapping[str, Any]) -> CapStep:
    if wire["kind"] == "amount":
        return AmountCapStep.from_wire(wire)
    if wire["kind"] == "count":
        return CountCapStep.from_wire(wire)
    raise ValueError(f"cap kind {wire['kind']!r} is not amount or count")


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantComputation(_WireOnce):
    """How a purchase, invoice, closing or award was valued: the entitlement, then each cap in order."""

    base: int | None
    refunded_before_decision: int | None
    rate: str | None  # as written in the policy, "0.60"
    grade: str | None
    raw_entitlement: int | None
    caps: tuple[CapStep, ...]
    granted: int

    _wire: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def _build_wire(self) -> dict[str, Any]:
        return {"base": _fen_or_none(self.base), "refunded_before_decision": _fen_or_none(self.refunded_before_decision), "rate": self.rate,
                "grade": self.grade, "raw_entitlement": _fen_or_none(self.raw_entitlement), "caps": [step.to_wire() for step in self.caps],
                "granted": format_fen(self.granted)}

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> GrantComputation:
        caps = tuple(_cap_step_from_wire(step) for step in wire["caps"])
        return cls(base=_amount_or_none(wire["base"]), refunded_before_decision=_amount_or_none(wire["refunded_before_decision"]), rate=wire["rate"],
                   grade=wire["grade"], raw_entitlement=_amount_or_none(wire["raw_entitlement"]), caps=caps, granted=parse_amount(wire["granted"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundPendingComputation:
    """A refund or credit note recorded before its original: netted out when the original comes."""

    refund: int
    refunded_total: int
    granted: Literal[0] = 0

    def to_wire(self) -> dict[str, Any]:
        return {"refund": format_fen(self.refund), "refunded_total": format_fen(self.refunded_total), "granted": format_fen(self.granted)}

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> RefundPendingComputation:
        return cls(refund=parse_amount(wire["refund"]), refunded_total=parse_amount(wire["refunded_total"]))


@dataclass(frozen=True, slots=True)
class VoidedBy:
    """Who voided a payment before it reached its payee, and why (an input of ``payment-voids``)."""

    operator: str
    reason: str

    def to_wire(self) -> dict[str, str]:
        return {"operator": self.operator, "reason": self.reason}

    @classmethod
    def from_wire(cls, wire: Mapping[str, str]) -> VoidedBy:
        return cls(operator=wire["operator"], reason=wire["reason"])


@dataclass(frozen=True, slots=True, kw_only=True)
class CorrectionComputation(_WireOnce):
    """A refund or credit note of a decided original: its entitlement on the net base, and the clawback."""

    original_base: int
    refunded_before: int
    refund: int
    net_base: int
    rate: str | None
    raw_entitlement: int
    granted_before: int
    granted_after: int
    clawback: int
    caps_released: tuple[str, ...]
    # of an operator's void (topic payment-voids): who voided the payment and why; absent from
    # the wire otherwise, so a refund's record stays byte for byte what it was
    void: VoidedBy | None = None

    _wire: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def _build_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"original_base": format_fen(self.original_base), "refunded_before": format_fen(self.refunded_before), "refund": format_fen(self.refund),
                "net_base": format_fen(self.net_base), "rate": self.rate, "raw_entitlement": format_fen(self.raw_entitlement),
                "granted_before": format_fen(self.granted_before), "granted_after": format_fen(self.granted_after), "clawback": format_fen(self.clawback),
                "caps_released": list(self.caps_released)}
        if self.void is not None:
            wire["void"] = self.void.to_wire()
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> CorrectionComputation:
        return cls(original_base=parse_amount(wire["original_base"]), refunded_before=parse_amount(wire["refunded_before"]), refund=parse_amount(wire["refund"]),
                   net_base=parse_amount(wire["net_base"]), rate=wire["rate"], raw_entitlement=parse_amount(wire["raw_entitlement"]),
                   granted_before=parse_amount(wire["granted_before"]), granted_after=parse_amount(wire["granted_after"]), clawback=parse_amount(wire["clawback"]),
                   caps_released=tuple(wire["caps_released"]), void=VoidedBy.from_wire(wire["void"]) if "void" in wire else None)


Computation: TypeAlias = GrantComputation | RefundPendingComputation | CorrectionComputation


def _computation_from_wire(wire: Mapping[str, Any]) -> Computation:
    if "caps" in wire:
        return GrantComputation.from_wire(wire)
    if "clawback" in wire:
        return CorrectionComputation.from_wire(wire)
    return RefundPendingComputation.from_wire(wire)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision(_WireOnce):
    """The outcome of one claim (one input under one clause), published on ``subsidy-decisions``."""

    decision_id: str
    event_id: str
    source: str
    topic: str
    occurred_at: str  # RFC 3339, as the input gave it
    policy_id: str
    policy_version: str
    clause_id: str
    fiscal_year: int
    outcome: OutcomeName
    payee: Party
    beneficiary: Party
    granted: int  # negative for a clawback
    declined: int  # what the caps did not allow of the raw entitlement
    declined_by: str | None
    reason: str
    corrects: str | None  # for a refund or credit note: the event it corrects
    computation: Computation
    instruction_id: str | None  # set exactly when money moves
    late_by: str | None  # ISO 8601: how far behind event-time order a late claim was decided; None in order

    _wire: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    # A decision made before v1.1 has no late_by on the wire: read back, it is re-emitted without
    # one, so its bytes and its content hash in the ledger stay those already booked.
    _late_by_on_wire: bool = field(default=True, init=False, repr=False, compare=False)

    def _build_wire(self) -> dict[str, Any]:
        wire = {
            "decision_id": self.decision_id,
            "event_id": self.event_id,
            "source": self.source,
            "topic": self.topic,
            "occurred_at": self.occurred_at,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "clause_id": self.clause_id,
            "fiscal_year": self.fiscal_year,
            "outcome": self.outcome,
            "payee": self.payee.to_wire(),
            "beneficiary": self.beneficiary.to_wire(),
            "granted": format_fen(self.granted),
            "declined": format_fen(self.declined),
            "declined_by": self.declined_by,
            "reason": self.reason,
            "corrects": self.corrects,
            "computation": self.computation.to_wire(),
            "instruction_id": self.instruction_id,
            "late_by": self.late_by,
        }
        if not self._late_by_on_wire:
            del wire["late_by"]
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Decision:
        decision = cls(
            decision_id=wire["decision_id"],
            event_id=wire["event_id"],
            source=wire["source"],
            topic=wire["topic"],
            occurred_at=wire["occurred_at"],
            policy_id=wire["policy_id"],
            policy_version=wire["policy_version"],
            clause_id=wire["clause_id"],
            fiscal_year=wire["fiscal_year"],
            outcome=wire["outcome"],
            payee=Party.from_wire(wire["payee"]),
            beneficiary=Party.from_wire(wire["beneficiary"]),
            granted=parse_amount(wire["granted"]),
            declined=parse_amount(wire["declined"]),
            declined_by=wire["declined_by"],
            reason=wire["reason"],
            corrects=wire["corrects"],
            computation=_computation_from_wire(wire["computation"]),
            instruction_id=wire["instruction_id"],
            late_by=wire.get("late_by"),
        )
        if "late_by" not in wire:
            object.__setattr__(decision, "_late_by_on_wire", False)
        return decision


@dataclass(frozen=True, slots=True, kw_only=True)
class Instruction(_WireOnce):
    """One payment to make or, with a negative amount, to claw back; published on
    ``disbursement-instructions``."""

    instruction_id: str
    kind: InstructionKind
    payee: Party
    beneficiary: Party
    amount: int  # fen: positive for a payment, negative for a clawback
    currency: Literal["CNY"] = "CNY"
    policy_id: str
    policy_version: str
    clause_id: str
    fiscal_year: int
    event_ids: tuple[str, ...]
    source: str
    occurred_at: str
    corrects: str | None  # for a clawback: the payment's instruction_id
    computation: GrantComputation | CorrectionComputation

    _wire: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def _build_wire(self) -> dict[str, Any]:
        return {
            "instruction_id": self.instruction_id,
            "kind": self.kind,
            "payee": self.payee.to_wire(),
            "beneficiary": self.beneficiary.to_wire(),
            "amount": format_fen(self.amount),
            "currency": self.currency,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "clause_id": self.clause_id,
            "fiscal_year": self.fiscal_year,
            "event_ids": list(self.event_ids),
            "source": self.source,
            "occurred_at": self.occurred_at,
            "corrects": self.corrects,
            "computation": self.computation.to_wire(),
        }

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Instruction:
        computation = _computation_from_wire(wire["computation"])
        if isinstance(computation, RefundPendingComputation):
            raise ValueError("an instruction's computation is a grant or a correction, not a pending refund")
        return cls(
            instruction_id=wire["instruction_id"],
            kind=wire["kind"],
            payee=Party.from_wire(wire["payee"]),
            beneficiary=Party.from_wire(wire["beneficiary"]),
            amount=parse_amount(wire["amount"]),
            currency=wire["currency"],
            policy_id=wire["policy_id"],
            policy_version=wire["policy_version"],
            clause_id=wire["clause_id"],
            fiscal_year=wire["fiscal_year"],
            event_ids=tuple(wire["event_ids"]),
            source=wire["source"],
            occurred_at=wire["occurred_at"],
            corrects=wire["corrects"],
            computation=computation,
        )
