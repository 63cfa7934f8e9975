"""The input messages of the wire contract (v1, and v1.1's payee-exclusions and payee-accounts):
the models intake validates with (payee-accounts: the ledger's payments read them), defined in the
core (``rules.inputs``) and published here with the rest of the contract. The wire layer depends
on the core, never the reverse (tests/unit/test_layers.py)."""

from __future__ import annotations

from rules.inputs import (
    EXCLUSIONS_TOPIC,
    INPUT_TOPICS,
    MODEL_BY_TOPIC,
    PAYEE_ACCOUNTS_TOPIC,
    AccountNumber,
    Amount,
    AwardAnnouncement,
    Beneficiary,
    CnapsCode,
    ComputePurchase,
    Day,
    Enterprise,
    EventId,
    InputMessage,
    InvestmentClosing,
    ModelInvoice,
    PayeeAccount,
    PayeeExclusion,
    Person,
    ResidentId,
    Team,
    TeamRef,
    Text,
    Timestamp,
    Uscc,
    party_id,
)

__all__ = [
    "EXCLUSIONS_TOPIC",
    "INPUT_TOPICS",
    "MODEL_BY_TOPIC",
    "PAYEE_ACCOUNTS_TOPIC",
    "AccountNumber",
    "Amount",
    "AwardAnnouncement",
    "Beneficiary",
    "CnapsCode",
    "ComputePurchase",
    "Day",
    "Enterprise",
    "EventId",
    "InputMessage",
    "InvestmentClosing",
    "ModelInvoice",
    "PayeeExclusion",
    "PayeeAccount",
    "Person",
    "ResidentId",
    "Team",
    "TeamRef",
    "Text",
    "Timestamp",
    "Uscc",
    "party_id",
]
