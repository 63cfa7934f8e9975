"""From the bytes of one input message to the claims it makes, or a rejection a person can act on.

This is the only place that decides whether an input is acceptable; the engine then decides
what it is worth. Both are pure: no Kafka, no database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from rules.inputs import MODEL_BY_TOPIC, PAYMENT_VOIDS_TOPIC, AwardAnnouncement, Enterprise, InputMessage, PaymentVoid, party_id
from rules.policy import Clause, Policy

M = TypeVar("M", bound=BaseModel)  # an input model, or payment-status (no beneficiary)


class Rejected(Exception):
    """An input that cannot be accepted. ``reason`` says what to fix; ``code`` groups reasons."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claim:
    """One input's request under one clause: everything the engine needs, nothing more.

    A plain, JSON-able record so the streaming layer can re-key and forward it.
    """

    clause_id: str
    topic: str
    source: str
    event_id: str
    occurred_at: str
    fiscal_year: int
    day: str  # the date it happened in the policy's time zone: picks the dated values
    beneficiary: dict[str, str]  # {"id", "kind", "name"}
    payee: dict[str, str]
    base: int | None  # fen; for a correction, the corrected (refunded) sum, positive
    grade: str | None
    subject: str | None
    corrects: str | None  # event_id of the purchase or invoice this refund/credit note corrects
    fingerprint: str  # digest of the validated message: tells a replay from a reused event_id
    project_ref: str | None = None  # contract v1.1; None in claims written before it
    # of a payment-voids message (void_claim): the payment voided, who and why
    voids: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict, sharing the party dicts (``asdict`` deep-copies them: a tenth of
        a worker's intake time, for a dict that is serialized at once). Without ``voids`` unless
        it is one: a claim's record stays what it was before voids existed."""
        data = {name: getattr(self, name) for name in _CLAIM_FIELDS}
        if self.voids is None:
            del data["voids"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Claim":
        return cls(**data)


_CLAIM_FIELDS = tuple(f.name for f in fields(Claim))


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Rejected("malformed-json", f"field {key!r} appears twice in one object; send it once")
        seen[key] = value
    return seen


_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicate_keys)  # json.loads would build one per message


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "message"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field; the contract (v1) does not have it, check its spelling"
        elif item["type"] == "missing":
            message = "required field is missing"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_message(topic: str, raw: bytes) -> InputMessage:
    """Bytes -> validated message of ``topic``, or ``Rejected``."""
    model = MODEL_BY_TOPIC.get(topic)
    if model is None:
        raise Rejected("unknown-topic", f"topic {topic!r} is not an input topic ({', '.join(MODEL_BY_TOPIC)})")
    return parse_as(model, raw)


def parse_as(model: type[M], raw: bytes) -> M:
    """Bytes -> validated ``model``, or ``Rejected``: the same checks for every input topic."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("not-utf8", f"message is not UTF-8 (byte {exc.start}); the contract requires UTF-8 JSON") from None
    try:
        data = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise Rejected("malformed-json", f"message is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise Rejected("malformed-json", "message nests too deeply to be a contract message") from None
    if not isinstance(data, dict):
        raise Rejected("malformed-json", f"message must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Rejected("invalid-field", _explain(exc)) from None


# Field names per input model. Not ``type(message).model_fields``: pydantic serves that
# class attribute through a deprecation-checking descriptor (since 2.11): 5 % of intake's time.
_FIELD_NAMES = {model: frozenset(model.model_fields) for model in MODEL_BY_TOPIC.values()}


def _field(message: InputMessage, name: str) -> Any:
    """A field of the message, or None if its topic has no such field (without pydantic's
    ``__getattr__``, which raises and catches for a missing name: a tenth of intake's time)."""
    return getattr(message, name) if name in _FIELD_NAMES[type(message)] else None


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_NO_PROJECT = {"project_ref"}


def _party(party: Any) -> dict[str, str]:
    return {"id": party_id(party), "kind": party.kind, "name": party.name}


def claims_from_message(topic: str, message: InputMessage, policy: Policy, received_at: dt.datetime | None = None) -> list[Claim]:
    """The claims one valid message makes under ``policy`` (one per clause it triggers);
    ``received_at``, when the broker's time of the message is known, bounds its ``occurred_at``."""
    allowed = policy.sources.get(topic, frozenset())
    if message.source not in allowed:
        raise Rejected(
            "unknown-source",
            f"source {message.source!r} may not publish to {topic}; allowed: {', '.join(sorted(allowed)) or 'none'}",
        )
    award = message.award if isinstance(message, AwardAnnouncement) else None
    # programmes run together: a source feeds the clauses of the programmes that list it
    clauses = [c for c in policy.clauses_for(topic, award) if message.source in policy.programme_of(c.id).sources.get(topic, ())]
    if not clauses:
        if award is not None:
            raise Rejected("unknown-award", f"award {award!r} is not a clause of {policy.policy_id}; known awards: {', '.join(policy.awards)}")
        raise Rejected("no-clause", f"no clause of {policy.policy_id} is triggered by {topic}")
    local = message.occurred_at.astimezone(_zone(policy.timezone))
    day = local.date()
    if received_at is not None:
        _check_clock_skew(policy, message.occurred_at, received_at.astimezone(local.tzinfo))
    beneficiary = _party(message.beneficiary)
    # without an absent project_ref: an event decided before contract v1.1 keeps its fingerprint
    fingerprint = hashlib.sha256(message.model_dump_json(exclude=_NO_PROJECT if message.project_ref is None else None).encode()).hexdigest()[:32]
    corrects = message.corrects
    claims = []
    for clause in clauses:
        if beneficiary["kind"] not in clause.payee_kinds:
            raise Rejected(
                "payee-kind",
                f"{clause.id} pays {' or '.join(sorted(clause.payee_kinds))}, not a {beneficiary['kind']}: "
                f"identify the beneficiary by {'uscc' if 'enterprise' in clause.payee_kinds else 'person_id or team_ref'}",
            )
        _check_window(clause, day)
        entitlement = clause.entitlement
        base = None
        if entitlement.kind == "share" or corrects:
            base = _field(message, entitlement.base or "amount")
            if base is None:
                raise Rejected("missing-base", f"{clause.id} is paid as a share of {entitlement.base}: the announcement must carry it")
            base = abs(base)  # a refund may be sent as a negative amount or as the positive refunded sum
        grade = _field(message, "grade")
        if entitlement.kind == "by-grade" and grade is None:
            known = ", ".join(entitlement.grades) + (", or another grade" if entitlement.other_grades else "")
            raise Rejected("missing-grade", f"{clause.id} pays by grade: the announcement must carry `grade` ({known})")
        if entitlement.kind == "by-grade" and grade not in entitlement.grades and entitlement.other_grades is None:
            raise Rejected("unknown-grade", f"{clause.id} pays by grade; grade must be one of {', '.join(entitlement.grades)}")
        paid_party = clause.paid_party.at(day)
        payee = beneficiary
        if paid_party == "provider":
            provider = _field(message, "provider") or _field(message, "vendor")
            assert isinstance(provider, Enterprise), "policy loader only allows provider on topics that have one"
            payee = _party(provider)
        claims.append(
            Claim(
                clause_id=clause.id,
                topic=topic,
                source=message.source,
                event_id=message.event_id,
                occurred_at=message.occurred_at.isoformat(),
                fiscal_year=local.year,
                day=day.isoformat(),
                beneficiary=beneficiary,
                payee=payee,
                base=base,
                grade=grade,
                subject=_field(message, "subject"),
                corrects=corrects,
                fingerprint=fingerprint,
                project_ref=message.project_ref,
            )
        )
    return claims


def intake(topic: str, raw: bytes, policy: Policy, received_at: dt.datetime | None = None) -> list[Claim]:
    """Bytes of one input message -> its claims, or ``Rejected``. ``received_at``: when the
    broker received it (None for a file replayed without a broker: no clock-skew check)."""
    if topic == PAYMENT_VOIDS_TOPIC:
        return [void_claim(raw, policy)]
    return claims_from_message(topic, parse_message(topic, raw), policy, received_at)


# --- payment voids (ours): an operator withdraws a payment that has not reached its payee -------
# The void is a claim of the payment's clause, keyed like the clause's other claims, so that decide
# releases the payment's caps in event-time order (rules/engine.py ``_void``) and a replay of the
# inputs decides what the pipeline decided. Whether the payment can still be withdrawn (not sent,
# not settled) the ledger checks before the void is published (``subsidy payments void``).


def void_claim(raw: bytes, policy: Policy) -> Claim:
    """Bytes of one ``payment-voids`` message -> the claim decide voids the payment with, or ``Rejected``."""
    return claim_of_void(parse_as(PaymentVoid, raw), policy)


def claim_of_void(void: PaymentVoid, policy: Policy) -> Claim:
    """A valid ``payment-voids`` message -> its claim under ``policy``, or ``Rejected``."""
    allowed = policy.sources.get(PAYMENT_VOIDS_TOPIC, frozenset())
    if void.source not in allowed:
        raise Rejected("unknown-source", f"source {void.source!r} may not publish to {PAYMENT_VOIDS_TOPIC}; allowed: {', '.join(sorted(allowed)) or 'none'}")
    payment = void.payment
    if payment.clause_id not in policy.clauses:
        raise Rejected("unknown-clause", f"clause {payment.clause_id!r} of payment {payment.instruction_id} is not in policy {policy.policy_id}")
    day = void.occurred_at.astimezone(_zone(policy.timezone)).date()
    payee = {"id": party_id(void.payee), "kind": void.payee.kind, "name": void.payee.name}
    return Claim(
        clause_id=payment.clause_id,
        topic=PAYMENT_VOIDS_TOPIC,
        source=void.source,
        event_id=void.event_id,
        occurred_at=void.occurred_at.isoformat(),
        fiscal_year=day.year,
        day=day.isoformat(),
        beneficiary=payee,
        payee=payee,
        base=None,
        grade=None,
        subject=None,
        corrects=None,
        fingerprint=hashlib.sha256(void.model_dump_json().encode()).hexdigest()[:32],
        voids={"instruction_id": payment.instruction_id, "source": payment.source, "event_id": payment.event_id,
               "operator": void.operator, "reason": void.reason},
    )


# --- programme windows (issue 25) ---------------------------------------------------------


def _check_window(clause: Clause, day: dt.date) -> None:
    """A claim from before the clause's first day or after its end is no claim of it."""
    if day < clause.starts:
        raise Rejected(
            "outside-programme",
            f"occurred_at is {day} (policy time zone), before {clause.id} took effect on {clause.starts}; "
            "if the date is wrong, publish the event again with the day it happened, otherwise this clause does not pay it",
        )
    last_day = clause.ends.at(day) if clause.ends is not None else None
    if last_day is not None and day > last_day:
        raise Rejected(
            "outside-programme",
            f"occurred_at is {day} (policy time zone), after {clause.id} ended on {last_day}; "
            "if the date is wrong, publish the event again with the day it happened, otherwise this clause does not pay it",
        )


def _check_clock_skew(policy: Policy, occurred_at: dt.datetime, received_at: dt.datetime) -> None:
    """An event cannot have happened after the broker received it, beyond the clocks' allowed skew."""
    skew = policy.clock_skew.at(received_at.date()) if policy.clock_skew is not None else None
    if skew is not None and occurred_at - received_at > skew:
        raise Rejected(
            "dated-in-future",
            f"occurred_at {occurred_at.isoformat()} is {occurred_at - received_at} after the broker received the message "
            f"({received_at.isoformat()}), more than the {skew} clock skew allowed; publish it again with the time it happened, "
            "and check the publishing system's clock",
        )
