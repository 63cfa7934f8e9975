"""The input messages of the wire contract (v1, and v1.1's payee-exclusions): the models intake validates with, defined
in the core (``rules.inputs``) and published here with the rest of the contract. The wire layer
depends on the core, never the reverse (tests/unit/test_layers.py)."""

from __future__ import annotations

from rules.inputs import (
    EXCLUSIONS_TOPIC,
    INPUT_TOPICS,
    MODEL_BY_TOPIC,
    Amount,
    AwardAnnouncement,
    Beneficiary,
    ComputePurchase,
    Day,
    Enterprise,
    EventId,
    InputMessage,
    InvestmentClosing,
    ModelInvoice,
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
    "Amount",
    "AwardAnnouncement",
    "Beneficiary",
    "ComputePurchase",
    "Day",
    "Enterprise",
    "EventId",
    "InputMessage",
    "InvestmentClosing",
    "ModelInvoice",
    "PayeeExclusion",
    "Person",
    "ResidentId",
    "Team",
    "TeamRef",
    "Text",
    "Timestamp",
    "Uscc",
    "party_id",
]
