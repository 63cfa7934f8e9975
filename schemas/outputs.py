"""The three output messages of the wire contract (v1), as strict pydantic models.

They describe exactly the wire form of the pure core's typed records (``rules/records.py``:
``Decision.to_wire()``, ``Instruction.to_wire()``) and the rejection records the adapters build
with ``rejection_record`` below. Unlike the input models, nothing here converts: every field
holds its wire form (amounts are "1234.50" strings, timestamps RFC 3339 strings), so
``Model.model_validate(d).model_dump(mode="json") == d`` for every record the core emits.
Unknown fields are refused: a field a record gains must be added here (and to the published
JSON Schema) first; tests/unit/test_records.py checks the records' fields against these models.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import uuid
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_serializer, model_validator

from rules.identifiers import resident_id_problem, uscc_problem
from rules.money import parse_amount
from schemas.inputs import INPUT_TOPICS, PAYMENT_VOIDS_TOPIC

# --- scalar wire types ---------------------------------------------------------------

#: any amount: "1234.50", "-120.00" (a clawback), "0.00"; never "-0.00", never 1 or 3 decimals
MONEY_PATTERN = r"^(0\.00|-?0\.(0[1-9]|[1-9][0-9])|-?[1-9][0-9]*\.[0-9]{2})$"
#: an amount that is never negative
NON_NEGATIVE_MONEY_PATTERN = r"^(0|[1-9][0-9]*)\.[0-9]{2}$"
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
HEX_ID_PATTERN = r"^[0-9a-f]{32}$"
RATE_PATTERN = r"^(0|1)(\.[0-9]+)?$"
SCOPE_PATTERN = r'^\["cap", '
CODE_PATTERN = r"^[a-z][a-z0-9-]{1,63}$"
BASE64_PATTERN = r"^[A-Za-z0-9+/]*={0,2}$"

Currency = Literal["CNY"]
Topic = Literal[(*INPUT_TOPICS, PAYMENT_VOIDS_TOPIC)]  # type: ignore[valid-type]  # the topics a claim is made of (a void decides too)
Outcome = Literal["granted", "partly-granted", "declined", "clawed-back", "adjusted", "refund-recorded"]
InstructionKind = Literal["payment", "clawback"]


def _real_time(value: str) -> str:
    text = value.replace("z", "Z").replace("Z", "+00:00")
    if "." in text:  # Python keeps microseconds; finer digits are noise
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    try:
        dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a real date and time: {exc}") from None
    return value


def _scope(value: str) -> str:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if not (isinstance(parsed, list) and len(parsed) >= 4 and parsed[0] == "cap" and all(isinstance(p, str) for p in parsed)):
        raise ValueError(f"{value!r} is not a cap scope: a JSON list [\"cap\", clause, cap, period, *who]")
    return value


# ISO 8601 days/hours/minutes/seconds, at least one of them (no look-ahead: JSON Schema regexes need not have it)
_DURATION_TIME = r"T([0-9]+H([0-9]+M)?([0-9]+(\.[0-9]+)?S)?|[0-9]+M([0-9]+(\.[0-9]+)?S)?|[0-9]+(\.[0-9]+)?S)"
DURATION_PATTERN = rf"^P([0-9]+D({_DURATION_TIME})?|{_DURATION_TIME})$"
Money = Annotated[str, StringConstraints(pattern=MONEY_PATTERN)]
NonNegativeMoney = Annotated[str, StringConstraints(pattern=NON_NEGATIVE_MONEY_PATTERN)]
Timestamp = Annotated[
    str,
    StringConstraints(pattern=RFC3339_PATTERN),
    AfterValidator(_real_time),
    Field(json_schema_extra={"format": "date-time", "description": "RFC 3339 with an offset"}),
]
HexId = Annotated[str, StringConstraints(pattern=HEX_ID_PATTERN)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
RateText = Annotated[str, StringConstraints(pattern=RATE_PATTERN), Field(description="the share as an exact decimal, e.g. \"0.60\", as written in the policy")]
Scope = Annotated[
    str,
    StringConstraints(pattern=SCOPE_PATTERN),
    AfterValidator(_scope),
    Field(description="the running-state key of a cap: a JSON list [\"cap\", clause, cap, period, *who]"),
]
Count = Annotated[int, Field(ge=0)]


def fen(amount: str) -> int:
    """A validated wire amount -> int fen (for the cross-field checks)."""
    return parse_amount(amount)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- parties -------------------------------------------------------------------------


def _uscc(value: str) -> str:
    problem = uscc_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _resident_id(value: str) -> str:
    problem = resident_id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class EnterpriseParty(_Out):
    """An enterprise, identified by its USCC."""

    id: Annotated[str, StringConstraints(pattern=r"^[0-9A-HJ-NP-RTUWXY]{18}$"), AfterValidator(_uscc)]
    kind: Literal["enterprise"]
    name: Name


class PersonParty(_Out):
    """A person, identified by a resident ID number."""

    id: Annotated[str, StringConstraints(pattern=r"^[0-9]{17}[0-9X]$"), AfterValidator(_resident_id)]
    kind: Literal["person"]
    name: Name


class TeamParty(_Out):
    """A team, identified by the reference the review system gave it."""

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,63}$")]
    kind: Literal["team"]
    name: Name


#: ``{id, kind, name}``: who is paid (``payee``) or whom the claim is about (``beneficiary``)
Party = Annotated[Union[EnterpriseParty, PersonParty, TeamParty], Field(discriminator="kind")]


# --- computation ---------------------------------------------------------------------


class AmountCapStep(_Out):
    """A money cap applied to a grant: what it allowed and what was left under it."""

    cap: Name
    scope: Scope
    kind: Literal["amount"]
    limit: NonNegativeMoney
    used_before: NonNegativeMoney
    room_before: NonNegativeMoney
    granted_after: NonNegativeMoney


class CountCapStep(_Out):
    """A cap on the number of paid claims (e.g. once per subject)."""

    cap: Name
    scope: Scope
    kind: Literal["count"]
    limit: Count
    used_before: Count
    room_before: Count
    adds: Literal[0, 1] = Field(description="1 if this payment takes a place under the cap; 0 for a subject already counted by a `distinct` cap")
    granted_after: NonNegativeMoney


CapStep = Annotated[Union[AmountCapStep, CountCapStep], Field(discriminator="kind")]


class GrantComputation(_Out):
    """How a purchase, invoice, closing or award was valued: base × rate (or a fixed / graded
    amount), then every cap in order with the room it had."""

    base: NonNegativeMoney | None
    refunded_before_decision: NonNegativeMoney | None
    rate: RateText | None
    grade: Name | None
    raw_entitlement: NonNegativeMoney | None
    caps: list[CapStep]
    granted: NonNegativeMoney


class RefundPendingComputation(_Out):
    """A refund / credit note that arrived before its original: recorded, netted out later."""

    refund: NonNegativeMoney
    refunded_total: NonNegativeMoney
    granted: Literal["0.00"]


class VoidedBy(_Out):
    """Who voided a payment before it reached its payee, and why (input ``payment-voids``)."""

    operator: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=500)


class CorrectionComputation(_Out):
    """A refund / credit note of an original already decided: the entitlement recomputed on
    the net base, and what is clawed back. An operator's void of a payment that has not reached
    its payee is a correction too: nothing refunded, everything clawed back, with ``void``."""

    original_base: NonNegativeMoney
    refunded_before: NonNegativeMoney
    refund: NonNegativeMoney
    net_base: NonNegativeMoney
    rate: RateText | None
    raw_entitlement: NonNegativeMoney
    granted_before: NonNegativeMoney
    granted_after: NonNegativeMoney
    clawback: NonNegativeMoney
    caps_released: list[Scope]
    void: VoidedBy | None = Field(default=None, description="present only on the void of a payment: who voided it, and why")

    @model_validator(mode="after")
    def _arithmetic(self) -> "CorrectionComputation":
        if fen(self.granted_before) - fen(self.granted_after) != fen(self.clawback):
            raise ValueError("clawback must equal granted_before - granted_after")
        if fen(self.original_base) - fen(self.refunded_before) - fen(self.refund) != fen(self.net_base):
            raise ValueError("net_base must equal original_base - refunded_before - refund")
        if bool(self.caps_released) and not fen(self.clawback):
            raise ValueError("caps_released must be empty when nothing is clawed back")
        if self.void is not None and (fen(self.refund) or fen(self.granted_after)):
            raise ValueError("a void refunds nothing and claws back everything: refund and granted_after must be 0.00")
        return self

    @model_serializer(mode="wrap")
    def _without_absent_void(self, handler: Any) -> dict[str, Any]:
        """A refund's computation has no ``void`` key on the wire (the engine's record has none)."""
        data = handler(self)
        if data.get("void") is None:
            data.pop("void", None)
        return data


# --- decision ------------------------------------------------------------------------

_GRANT_OUTCOMES = ["granted", "partly-granted", "declined"]
_CORRECTION_OUTCOMES = ["clawed-back", "adjusted"]


def _if_then(field: str, values: list[str], then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {field: {"enum": values}}, "required": [field]}, "then": {"properties": then}}


_NULL = {"type": "null"}
_STRING = {"type": "string"}

# JSON Schema ``if``/``then`` forms of the model validators below (the part a schema can say);
# ``$ref``s point at the ``$defs`` pydantic generates for the computation models.
_DECISION_RULES: dict[str, Any] = {
    "allOf": [
        _if_then("outcome", _GRANT_OUTCOMES, {"computation": {"$ref": "#/$defs/GrantComputation"}, "corrects": _NULL}),
        _if_then("outcome", ["refund-recorded"], {"computation": {"$ref": "#/$defs/RefundPendingComputation"}, "corrects": _STRING, "instruction_id": _NULL}),
        _if_then("outcome", _CORRECTION_OUTCOMES, {"computation": {"$ref": "#/$defs/CorrectionComputation"}, "corrects": _STRING}),
        _if_then("outcome", ["granted", "partly-granted", "clawed-back"], {"instruction_id": _STRING}),
        _if_then("outcome", ["declined", "adjusted"], {"instruction_id": _NULL}),
        _if_then("outcome", ["clawed-back"], {"granted": {"pattern": r"^-"}}),
    ]
}


class Decision(_Out):
    """The outcome of one claim: one input under one clause. Published on ``subsidy-decisions``."""

    #: cross-field rules, added to the published JSON Schema by ``schemas.export``
    json_schema_rules: ClassVar[dict[str, Any]] = _DECISION_RULES

    decision_id: HexId
    event_id: EventId
    source: Name
    topic: Topic
    occurred_at: Timestamp
    policy_id: Name
    policy_version: Name
    clause_id: Name
    fiscal_year: int
    outcome: Outcome
    payee: Party
    beneficiary: Party
    granted: Money = Field(description="negative for a clawback")
    declined: NonNegativeMoney = Field(description="raw entitlement minus granted: what the caps did not allow")
    declined_by: Name | None = Field(description="the cap id (or not-in-force / not-eligible / nothing-to-pay) that lowered the grant")
    reason: str
    corrects: EventId | None = Field(description="for a refund or credit note: the event_id of the purchase or invoice it corrects")
    computation: Union[GrantComputation, RefundPendingComputation, CorrectionComputation]
    instruction_id: HexId | None = Field(description="the disbursement instruction this decision produced, if any")
    late_by: Annotated[str, StringConstraints(pattern=DURATION_PATTERN)] | None = Field(
        default=None,
        description="null, but for a claim that arrived after its clause's allowed lateness, so it took budget in arrival "
        "order, not in its place by occurred_at: how far its occurred_at is behind the last claim already decided "
        "in order, as an ISO 8601 duration (P1DT2H30M, PT0S when it lost only on the tie-break of source and event_id); "
        "absent from decisions made before v1.1",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "Decision":
        granted, declined, c = fen(self.granted), fen(self.declined), self.computation
        problems = []
        if self.outcome in _GRANT_OUTCOMES:
            if not isinstance(c, GrantComputation):
                problems.append("a grant's computation has base, rate, raw_entitlement, caps and granted")
            elif fen(c.granted) != granted:
                problems.append("granted differs from computation.granted")
            if self.corrects is not None:
                problems.append("only a refund or credit note corrects an event")
            if self.outcome == "granted" and (granted <= 0 or declined or self.declined_by):
                problems.append("granted means the whole entitlement (> 0) was paid")
            if self.outcome == "partly-granted" and (granted <= 0 or declined <= 0 or not self.declined_by):
                problems.append("partly-granted means a cap (declined_by) declined part of an entitlement > 0")
            if self.outcome == "declined" and (granted != 0 or not self.declined_by):
                problems.append("declined means 0.00 granted, with declined_by saying why")
        else:
            if self.corrects is None:
                problems.append(f"a {self.outcome} decision names the event it corrects")
            if declined:
                problems.append("a correction declines nothing")
            if self.outcome == "refund-recorded" and (granted != 0 or not isinstance(c, RefundPendingComputation)):
                problems.append("refund-recorded grants 0.00 and records refund and refunded_total")
            if self.outcome in _CORRECTION_OUTCOMES:
                if not isinstance(c, CorrectionComputation):
                    problems.append("a correction's computation has original_base, net_base, clawback, ...")
                elif -fen(c.clawback) != granted:
                    problems.append("granted must be minus computation.clawback")
                if self.outcome == "clawed-back" and granted >= 0:
                    problems.append("clawed-back grants a negative amount")
                if self.outcome == "adjusted" and granted != 0:
                    problems.append("adjusted claws nothing back")
        if (granted != 0) != (self.instruction_id is not None):
            problems.append("instruction_id is set exactly when money moves (granted != 0.00)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# --- disbursement instruction --------------------------------------------------------

_INSTRUCTION_RULES: dict[str, Any] = {
    "allOf": [
        _if_then(
            "kind",
            ["payment"],
            {"amount": {"pattern": r"^[0-9]", "not": {"const": "0.00"}}, "corrects": _NULL, "computation": {"$ref": "#/$defs/GrantComputation"}},
        ),
        _if_then(
            "kind",
            ["clawback"],
            {"amount": {"pattern": r"^-"}, "corrects": {"type": "string", "pattern": HEX_ID_PATTERN}, "computation": {"$ref": "#/$defs/CorrectionComputation"}},
        ),
    ]
}


class DisbursementInstruction(_Out):
    """One payment to make (or, with a negative amount, to claw back). Published on
    ``disbursement-instructions``, keyed by the payee's id."""

    #: cross-field rules, added to the published JSON Schema by ``schemas.export``
    json_schema_rules: ClassVar[dict[str, Any]] = _INSTRUCTION_RULES

    instruction_id: HexId = Field(description="deterministic from policy, clause, source and event: a replay produces the same id")
    kind: InstructionKind
    payee: Party
    beneficiary: Party
    amount: Money = Field(description="positive for a payment, negative for a clawback")
    currency: Currency
    policy_id: Name
    policy_version: Name
    clause_id: Name
    fiscal_year: int
    event_ids: Annotated[list[EventId], Field(min_length=1)]
    source: Name
    occurred_at: Timestamp
    corrects: HexId | None = Field(description="for a clawback: the instruction_id of the payment it corrects")
    computation: Union[GrantComputation, CorrectionComputation]

    @model_validator(mode="after")
    def _clawback_rule(self) -> "DisbursementInstruction":
        amount, c = fen(self.amount), self.computation
        if self.kind == "payment":
            if amount <= 0:
                raise ValueError(f"a payment has a positive amount, got {self.amount}")
            if self.corrects is not None:
                raise ValueError("a payment corrects nothing: corrects must be null")
            if not isinstance(c, GrantComputation) or fen(c.granted) != amount:
                raise ValueError("a payment's computation is a grant whose granted equals amount")
        else:
            if amount >= 0:
                raise ValueError(f"a clawback has a negative amount, got {self.amount}")
            if self.corrects is None:
                raise ValueError("a clawback names the instruction it corrects (corrects must not be null)")
            if self.corrects == self.instruction_id:
                raise ValueError("a clawback cannot correct itself")
            if not isinstance(c, CorrectionComputation) or fen(c.clawback) != -amount:
                raise ValueError("a clawback's computation is a correction whose clawback equals -amount")
        return self


# --- rejection -----------------------------------------------------------------------


#: contract v1.1, "Sizes": a rejection keeps at most this much of the original (with its length
#: and SHA-256), so that the record fits the broker's max.message.bytes however large the input
MAX_ORIGINAL_BYTES = 64 * 1024
#: a rejection's reason is cut here: reasons quote values of the input (a 900 KB timestamp string,
#: say), and two thousand characters tell a person what to fix
MAX_REASON_CHARS = 2000
#: a rejection's key (and the Kafka key it is published under) keeps at most this much of the
#: input's key; a payee id is 18 characters, so only a broken producer's key is ever cut
MAX_KEY_BYTES = 1024
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class Rejection(_Out):
    """An input that could not be accepted, with its original bytes (at most the first 64 KiB) and
    a reason a person can act on. Published on ``subsidy-rejections`` by the adapters (not by the
    pure core)."""

    rejection_id: HexId = Field(description="uuid5 of (topic, partition, offset, sha256 of the bytes): a re-delivery gets the same id")
    topic: Name
    partition: Count | None = Field(description="null when replayed from a file")
    offset: Count | None = Field(description="the Kafka offset, or the line number when replayed from a file")
    key: str | None = Field(description="the Kafka key as UTF-8 text (undecodable bytes as \\xNN escapes; at most its first 1 KiB)")
    original: Annotated[str, StringConstraints(pattern=BASE64_PATTERN)] = Field(
        description="base64 of the original bytes, or of their first 64 KiB (cut at a character boundary when UTF-8) when original_truncated")
    original_text: str | None = Field(description="the bytes of original as text, when they are UTF-8")
    code: Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
    reason: Annotated[str, StringConstraints(min_length=1)] = Field(description="what to fix; at most 2,000 characters")
    rejected_at: Timestamp
    # v1.1 ("Sizes"); absent in v1 records, where original holds every byte
    original_length: Count | None = Field(default=None, description="length of the original in bytes (v1.1)")
    original_sha256: Annotated[str, StringConstraints(pattern=SHA256_PATTERN)] | None = Field(
        default=None, description="SHA-256 of the whole original, hex (v1.1)")
    original_truncated: bool | None = Field(default=None, description="true when original holds only the first bytes of a longer input (v1.1)")

    @model_validator(mode="after")
    def _original(self) -> "Rejection":
        try:
            raw = base64.b64decode(self.original, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"original is not base64: {exc}") from None
        if self.original_text is not None and raw != self.original_text.encode("utf-8"):
            raise ValueError("original_text must be the UTF-8 text of original")
        if self.original_truncated:
            if self.original_length is None or not len(raw) < self.original_length or len(raw) > MAX_ORIGINAL_BYTES:
                raise ValueError("a truncated original keeps fewer bytes than original_length, and at most 64 KiB")
        elif self.original_length is not None and self.original_length != len(raw):
            raise ValueError(f"original holds {len(raw)} bytes but original_length is {self.original_length}: set original_truncated")
        elif self.original_sha256 is not None and self.original_sha256 != hashlib.sha256(raw).hexdigest():
            raise ValueError("original_sha256 is not the SHA-256 of original")
        return self


def kept_original(raw: bytes) -> bytes:
    """What a rejection keeps of ``raw``: all of it up to 64 KiB, else its first 64 KiB, cut back
    (by at most 3 bytes) to a whole UTF-8 character where that makes the kept bytes text."""
    if len(raw) <= MAX_ORIGINAL_BYTES:
        return raw
    for end in range(MAX_ORIGINAL_BYTES, MAX_ORIGINAL_BYTES - 4, -1):
        try:
            raw[:end].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return raw[:end]
    return raw[:MAX_ORIGINAL_BYTES]


def kept_key(key: bytes | None) -> bytes | None:
    """The input's Kafka key as a rejection carries it: at most its first MAX_KEY_BYTES."""
    return key if key is None or len(key) <= MAX_KEY_BYTES else key[:MAX_KEY_BYTES]


REJECTION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:chengdu-ai-subsidy:subsidy-rejections:v1")


def rejection_id(topic: str, partition: int | None, offset: int | None, raw: bytes) -> str:
    """Deterministic: the same bytes at the same place always get the same id."""
    return _rejection_id(topic, partition, offset, hashlib.sha256(raw).hexdigest())


def _rejection_id(topic: str, partition: int | None, offset: int | None, sha256_hex: str) -> str:
    name = "\x1f".join((topic, "" if partition is None else str(partition), "" if offset is None else str(offset), sha256_hex))
    return uuid.uuid5(REJECTION_NAMESPACE, name).hex


def rejection_record(
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    raw: bytes,
    code: str,
    reason: str,
    rejected_at: dt.datetime,
    *,
    original_length: int | None = None,
    original_sha256: str | None = None,
) -> dict[str, Any]:
    """The ``subsidy-rejections`` record for ``raw``. Pure: the adapter supplies where the
    bytes came from (Kafka partition and offset; for a file replay ``partition=None`` and the
    line number as ``offset``) and the time.

    ``raw`` is the whole original, or only its first bytes (``kept_original``) when the adapter
    no longer holds the rest; then ``original_length`` and ``original_sha256`` describe the whole.
    The record keeps at most 64 KiB of it, the first 2,000 characters of ``reason`` and 1 KiB
    of ``key`` (contract v1.1, "Sizes")."""
    if rejected_at.tzinfo is None or rejected_at.utcoffset() is None:
        raise ValueError("rejected_at must be timezone-aware (RFC 3339 needs an offset)")
    length = len(raw) if original_length is None else original_length
    digest = original_sha256 or hashlib.sha256(raw).hexdigest()
    kept = kept_original(raw)
    try:
        text: str | None = kept.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    key = kept_key(key)
    record = {
        "rejection_id": _rejection_id(topic, partition, offset, digest),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": None if key is None else key.decode("utf-8", errors="backslashreplace"),
        "original": base64.b64encode(kept).decode("ascii"),
        "original_text": text,
        "code": code,
        "reason": reason,
        "rejected_at": rejected_at.isoformat(),
        "original_length": length,
        "original_sha256": digest,
        "original_truncated": len(kept) < length,
    }
    return Rejection.model_validate(record).model_dump(mode="json")


OUTPUT_MODELS: dict[str, type[BaseModel]] = {
    "disbursement-instructions": DisbursementInstruction,
    "subsidy-decisions": Decision,
    "subsidy-rejections": Rejection,
}
OUTPUT_TOPICS = tuple(OUTPUT_MODELS)
