"""``payee-accounts`` (contract v1.1): a payee's verified bank account, or its revocation. Not a
claim: intake validates the message like any input (a bad one is a rejection) and the ledger
stores the account its payments are paid to (sinks/ledger/payments.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rules.inputs import PAYEE_ACCOUNTS_TOPIC, PayeeAccount, party_id
from rules.intake import Rejected, parse_as
from rules.policy import Policy


def account_from(raw: bytes, policy: Policy) -> dict[str, Any]:
    """Bytes of one ``payee-accounts`` message -> the account message the ledger stores
    (``Payments.import_payee_accounts``: ``verified_at`` as UTC text, so that text order is time
    order), or ``Rejected`` (as intake does). Only a source on the topic's allow-list may name
    where a payee's money goes."""
    message = parse_as(PayeeAccount, raw)
    allowed = policy.sources.get(PAYEE_ACCOUNTS_TOPIC, frozenset())
    if message.source not in allowed:
        raise Rejected("unknown-source", f"source {message.source!r} may not publish to {PAYEE_ACCOUNTS_TOPIC}; allowed: {', '.join(sorted(allowed)) or 'none'}")
    return {"source": message.source, "event_id": message.event_id, "payee_id": party_id(message.beneficiary), "account_name": message.account_name,
            "account_number": message.account_number, "bank_code": message.bank_code,
            "verified_at": message.verified_at.astimezone(dt.timezone.utc).isoformat(), "revoked": message.revoked}
