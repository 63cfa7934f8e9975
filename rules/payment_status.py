"""``payment-status`` (contract v1.1): the bank's answer about one payment. Not a claim: intake
validates the message like any input (a bad one is a rejection); whether it fits a payment the
ledger sent (its EndToEndId, amount and state) only the ledger knows, so the ledger books a misfit
as a rejection of its own (sinks/ledger/bank_answers.py ``book_statuses``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

from rules.inputs import PAYMENT_STATUS_TOPIC, PaymentStatus
from rules.intake import Rejected, parse_as
from rules.policy import Policy

#: (code, reason) -> the ``subsidy-rejections`` record of the message's bytes where they were read
Reject = Callable[[str, str], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A valid ``payment-status`` message, with what its rejection carries if the ledger refuses it."""

    message: dict[str, Any]  # as the ledger stores it (ledger_bank_answers.body)
    amount_fen: int | None
    sha256: str  # of the bytes that carried it
    key: bytes | None  # the record's key, which its rejection is published under
    rejection_id: str  # the id its rejection has (the same on every redelivery)
    reject: Reject


def status_from(raw: bytes, policy: Policy, key: bytes | None, rejection_id: str, reject: Reject) -> StatusMessage:
    """Bytes of one ``payment-status`` message -> the message for the ledger, or ``Rejected``. Only a
    source on the topic's allow-list may say a payment was settled or returned."""
    status = parse_as(PaymentStatus, raw)
    allowed = policy.sources.get(PAYMENT_STATUS_TOPIC, frozenset())
    if status.source not in allowed:
        raise Rejected("unknown-source", f"source {status.source!r} may not publish to {PAYMENT_STATUS_TOPIC}; allowed: {', '.join(sorted(allowed)) or 'none'}")
    return StatusMessage(status.model_dump(mode="json", exclude_none=True), status.amount, hashlib.sha256(raw).hexdigest(), key, rejection_id, reject)
