"""Who may be paid (issue 25): the reason a payee outside Chengdu is declined, in one line.
Every boundary (510100, 510000, 110000, 511000, a payee against a beneficiary) is a scenario in
tests/scenarios/eligibility.yaml."""

from __future__ import annotations

import json

from parties import enterprise
from rules.engine import Engine
from rules.intake import intake
from rules.policy import load_policy

POLICY = load_policy()


def decide(buyer: dict, provider: dict) -> dict:
    message = {"event_id": "p1", "source": "scc-billing", "occurred_at": "2026-03-01T10:00:00+08:00", "beneficiary": buyer,
               "provider": provider, "invoice_no": "INV-1", "amount": "1000.00"}
    [claim] = intake("compute-purchases", json.dumps(message, ensure_ascii=False).encode(), POLICY)
    [decision] = Engine(POLICY, {}).decide(claim).decisions
    return decision.to_wire()


def test_the_reason_names_the_party_its_division_and_the_fix():
    buyer = enterprise(1, division="110000")
    decision = decide(buyer, enterprise(2, kind=1))
    assert (decision["outcome"], decision["declined_by"], decision["declined"]) == ("declined", "not-eligible", "600.00")
    assert decision["reason"] == (
        f"the beneficiary {buyer['uscc']} is registered in division 110000 (USCC characters 3-8), not in 5101xx "
        "where chengdu-ai-2025 pays enterprises; if the USCC is mistyped, publish the event again with the right one"
    )
    assert decision["instruction_id"] is None


def test_the_payee_is_named_before_the_beneficiary():
    provider = enterprise(2, kind=1, division="310115")
    decision = decide(enterprise(1, division="440305"), provider)
    assert decision["reason"].startswith(f"the payee {provider['uscc']} is registered in division 310115")
