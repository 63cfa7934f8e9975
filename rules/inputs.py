"""The four input messages of the wire contract (v1), as strict pydantic models.

They live in the core because intake decides with them what input is acceptable; the wire
layer publishes them as ``schemas.inputs`` (JSON Schema, examples). The dependency runs one way,
schemas -> rules: nothing in rules/ imports schemas/ (tests/unit/test_layers.py).

Money fields hold integer fen once validated (see ``rules.money``); on the wire they are
decimal strings. Unknown fields are refused rather than ignored: a misspelt ``refund_of``
silently ignored would turn a refund into a purchase and pay it.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    StringConstraints,
    Tag,
    WithJsonSchema,
    model_validator,
)

from rules.identifiers import resident_id_problem, uscc_problem
from rules.money import format_fen, parse_amount

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)

_BEYOND_MICROSECONDS = re.compile(r"\.(\d{6})\d+")

_EARLIEST_YEAR, _LATEST_YEAR = 1970, 9998


def _timestamp(value: object) -> datetime:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(
            f"{value!r} is not an RFC 3339 timestamp with an offset, e.g. \"2026-03-01T09:30:00+08:00\""
        )
    text = value.replace("z", "Z").replace("Z", "+00:00")
    if "." in text:
        text = _BEYOND_MICROSECONDS.sub(r".\1", text)  # Python keeps microseconds; finer digits are noise
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a real date and time: {exc}") from None
    # Why a range: year 0001 at +08:00 is a valid RFC 3339 string, but converting it to the
    # policy's time zone overflows Python's datetime and would crash intake instead of rejecting.
    if not _EARLIEST_YEAR <= moment.year <= _LATEST_YEAR:
        raise ValueError(f"{value!r} is outside the years {_EARLIEST_YEAR}-{_LATEST_YEAR} an event may carry")
    return moment


def _amount(value: object) -> int:
    return parse_amount(value)


def _uscc(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("uscc must be a string of 18 characters")
    problem = uscc_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _resident_id(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("person_id must be a string of 18 characters")
    problem = resident_id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Timestamp = Annotated[
    datetime,
    BeforeValidator(_timestamp),
    PlainSerializer(lambda d: d.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "RFC 3339 with an offset"}),
]
Amount = Annotated[
    int,
    BeforeValidator(_amount),
    PlainSerializer(format_fen, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^-?(0|[1-9][0-9]*)(\.[0-9]{1,2})?$"},
                {"type": "integer"},
            ],
            "description": "CNY as a decimal string with at most 2 fractional digits; an integer is whole yuan; a fractional JSON number is refused",
        }
    ),
]
Uscc = Annotated[
    str,
    BeforeValidator(_uscc),
    WithJsonSchema({"type": "string", "pattern": "^[0-9A-HJ-NP-RTUWXY]{18}$", "description": "USCC, GB 32100-2015, with a valid check character"}),
]
ResidentId = Annotated[
    str,
    BeforeValidator(_resident_id),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{17}[0-9X]$", "description": "resident ID number, GB 11643, with a valid check digit"}),
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TeamRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Enterprise(_Strict):
    kind: ClassVar[str] = "enterprise"
    uscc: Uscc
    name: Text


class Person(_Strict):
    kind: ClassVar[str] = "person"
    person_id: ResidentId
    name: Text


class Team(_Strict):
    kind: ClassVar[str] = "team"
    team_ref: TeamRef
    name: Text


def _party_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for field, kind in (("uscc", "enterprise"), ("person_id", "person"), ("team_ref", "team")):
            if field in value:
                return kind
        return None
    return getattr(value, "kind", None)


Beneficiary = Annotated[
    Union[
        Annotated[Enterprise, Tag("enterprise")],
        Annotated[Person, Tag("person")],
        Annotated[Team, Tag("team")],
    ],
    Discriminator(
        _party_kind,
        custom_error_type="beneficiary_kind",
        custom_error_message="beneficiary needs one of uscc (enterprise), person_id (person) or team_ref (team)",
    ),
]


def party_id(party: Enterprise | Person | Team) -> str:
    """The identifier used as Kafka key, ledger account and cap key."""
    if isinstance(party, Enterprise):
        return party.uscc
    if isinstance(party, Person):
        return party.person_id
    return party.team_ref


class InputMessage(_Strict):
    event_id: EventId
    source: Text
    occurred_at: Timestamp
    beneficiary: Beneficiary
    #: contract v1.1: the funded project or expense in the publishing system; one beneficiary's
    #: project is funded under one clause only, the one that pays most (就高不重复)
    project_ref: EventId | None = None

    #: the field naming the event this one corrects (refund or credit note), if the topic has one
    correction_field: ClassVar[str | None] = None

    @property
    def corrects(self) -> str | None:
        return getattr(self, self.correction_field) if self.correction_field else None

    def _refuse_negative(self, *fields: str) -> None:
        for name in fields:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")


class ComputePurchase(InputMessage):
    correction_field: ClassVar[str | None] = "refund_of"
    provider: Enterprise
    invoice_no: Text
    amount: Amount
    refund_of: EventId | None = None

    @model_validator(mode="after")
    def _sign(self) -> "ComputePurchase":
        if self.refund_of is None:
            self._refuse_negative("amount")
        return self


class ModelInvoice(InputMessage):
    correction_field: ClassVar[str | None] = "credit_of"
    vendor: Enterprise
    invoice_no: Text
    amount: Amount
    billing_period: Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
    credit_of: EventId | None = None

    @model_validator(mode="after")
    def _sign(self) -> "ModelInvoice":
        if self.credit_of is None:
            self._refuse_negative("amount")
        return self


class InvestmentClosing(InputMessage):
    round: Literal["angel", "vc", "pe"]
    amount: Amount
    investors: Annotated[list[Text], Field(min_length=1)]
    agreement_no: Text

    @model_validator(mode="after")
    def _sign(self) -> "InvestmentClosing":
        self._refuse_negative("amount")
        return self


class AwardAnnouncement(InputMessage):
    award: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,63}$")]
    approval_ref: Text
    subject: Text
    grade: Text | None = None
    base_amount: Amount | None = None

    @model_validator(mode="after")
    def _sign(self) -> "AwardAnnouncement":
        self._refuse_negative("base_amount")
        return self


MODEL_BY_TOPIC: dict[str, type[InputMessage]] = {
    "compute-purchases": ComputePurchase,
    "model-invoices": ModelInvoice,
    "investment-closings": InvestmentClosing,
    "award-announcements": AwardAnnouncement,
}
INPUT_TOPICS = tuple(MODEL_BY_TOPIC)


# --- v1.1: payee exclusions (the credit system) ---------------------------------------------

EXCLUSIONS_TOPIC = "payee-exclusions"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(value: object) -> date:
    if not isinstance(value, str) or not _DAY.match(value):
        raise ValueError(f"{value!r} is not a date like \"2026-03-01\"")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a real date: {exc}") from None


Day = Annotated[
    date,
    BeforeValidator(_day),
    PlainSerializer(lambda d: d.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "description": "a calendar date, YYYY-MM-DD"}),
]


class PayeeExclusion(InputMessage):
    """A payee listed by the credit system (e.g. 失信被执行人) from ``from`` to ``to``, both days
    included; no ``to``: until a later message about the same listing gives one. It makes no claim:
    it holds the payee's instructions (rules/exclusions.py)."""

    listing: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,63}$")] = Field(alias="list")
    starts: Day = Field(alias="from")
    ends: Day | None = Field(default=None, alias="to")
    reference: Text

    @model_validator(mode="after")
    def _order(self) -> "PayeeExclusion":
        if self.ends is not None and self.ends < self.starts:
            raise ValueError(f"to ({self.ends}) is before from ({self.starts})")
        return self
# -- v1.1: payee accounts (contract "payee-accounts"). Not a claim: intake hands them to the ledger's
# payments (rules/payee_accounts.py), so the topic is not in MODEL_BY_TOPIC, whose claims intake decides.

PAYEE_ACCOUNTS_TOPIC = "payee-accounts"
AccountNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{8,32}$")]
CnapsCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]


class PayeeAccount(InputMessage):
    """A payee's bank account, verified at ``verified_at``; ``revoked``: it may no longer be paid."""

    account_name: Text
    account_number: AccountNumber
    bank_code: CnapsCode
    verified_at: Timestamp
    revoked: bool = False


# -- v1.1: payment status (contract "payment-status"): the bank's answer about one payment, read
# from pain.002 and camt.054 files (sinks/iso20022_answers.py). Not a claim, so not in MODEL_BY_TOPIC.

PAYMENT_STATUS_TOPIC = "payment-status"
ReasonCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{4}$")]


class PaymentStatus(_Strict):
    """A bank's answer about the payment whose pain.001 EndToEndId is ``end_to_end_id``; rejected
    and returned carry the ISO 20022 reason (e.g. AC04 closed account). Kafka key: the
    ``end_to_end_id``, so that a payment's answers keep their order. One naming no payment sent, of
    another amount than the one sent, or saying what the payment's state does not allow (settled
    after rejected...) is a rejection on ``subsidy-rejections``."""

    event_id: EventId
    source: Text
    occurred_at: Timestamp
    end_to_end_id: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{1,35}$")]
    status: Literal["accepted", "rejected", "settled", "returned"]
    reason_code: ReasonCode | None = None
    amount: Amount | None = None

    #: the cross-field rules in the published JSON Schema
    json_schema_rules: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"status": {"enum": ["rejected", "returned"]}}, "required": ["status"]},
        "then": {"required": ["reason_code"], "properties": {"reason_code": {"type": "string"}}},
    }

    @model_validator(mode="after")
    def _reason(self) -> "PaymentStatus":
        if self.status in ("rejected", "returned") and self.reason_code is None:
            raise ValueError(f"a {self.status} payment carries its reason_code")
        if self.amount is not None and self.amount <= 0:
            raise ValueError("amount must be positive")
        return self


# -- payment voids (ours, not the contract's): an operator withdraws a payment that has not
# reached its payee. Unlike the contract's other v1.1 topics it makes a claim: decide releases the
# payment's room under every cap it charged, in event-time order with the clause's other claims,
# so that a replay of the inputs pays what the pipeline paid (docs/decisions/0015-a-void-is-an-input-of-decide.md).

PAYMENT_VOIDS_TOPIC = "payment-voids"
InstructionId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Operator = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]


class VoidedPayment(_Strict):
    """The payment a void withdraws: its instruction, and the clause and event that decided it."""

    instruction_id: InstructionId
    clause_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    source: Text
    event_id: EventId


class PaymentVoid(_Strict):
    """An operator's void of one payment (``subsidy payments void``). Kafka key: the payee's id.
    The ``event_id`` is ``void-`` and the instruction id, so a payment is voided at most once."""

    event_id: EventId
    source: Text
    occurred_at: Timestamp
    payee: Beneficiary
    payment: VoidedPayment
    operator: Operator
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]

    @model_validator(mode="after")
    def _one_void_per_payment(self) -> "PaymentVoid":
        if self.event_id != f"void-{self.payment.instruction_id}":
            raise ValueError(f"event_id must be \"void-{self.payment.instruction_id}\": a payment is voided once")
        return self
