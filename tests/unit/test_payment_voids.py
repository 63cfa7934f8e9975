"""An operator's void of a payment (topic payment-voids): decide gives the payment's room back
under every cap it charged, in event-time order, so a replay pays what the pipeline paid."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from parties import enterprise
from rules.engine import Engine, instruction_id_of
from rules.explain import explain
from rules.intake import Rejected, intake
from rules.policy import DEFAULT_POLICY_PATH, load_policy
from schemas import outputs
from subsidy.replay import replay

POLICY = load_policy()
CST = dt.timezone(dt.timedelta(hours=8))
BUYER, PROVIDER = enterprise(7), enterprise(1, kind=1)


def purchase(event_id: str, amount: str, day: int) -> tuple[str, bytes]:
    message = {"event_id": event_id, "source": "scc-billing", "occurred_at": dt.datetime(2026, 3, day, 10, tzinfo=CST).isoformat(),
               "beneficiary": BUYER, "provider": PROVIDER, "amount": amount, "invoice_no": f"INV-{event_id}"}
    return "compute-purchases", json.dumps(message, ensure_ascii=False).encode()


def void(instruction_id: str, event_id: str, day: int, **changes) -> tuple[str, bytes]:
    message = {"event_id": f"void-{instruction_id}", "source": "subsidy-operators", "occurred_at": dt.datetime(2026, 3, day, 12, tzinfo=CST).isoformat(),
               "payee": PROVIDER, "payment": {"instruction_id": instruction_id, "clause_id": "compute-voucher", "source": "scc-billing", "event_id": event_id},
               "operator": "wang.fang", "reason": "account closed, payee deregistered", **changes}
    return "payment-voids", json.dumps(message, ensure_ascii=False).encode()


def decide(engine: Engine, event: tuple[str, bytes]):
    (claim,) = intake(*event, POLICY)
    return engine.decide(claim)


def test_a_void_gives_the_room_back_to_a_later_claim_of_the_same_buyer():
    engine = Engine(POLICY, {})
    first = decide(engine, purchase("p-1", "8333333.34", 2))  # 60 % = 5,000,000.00: the buyer's year
    assert first.decisions[0].granted == 500_000_000
    assert decide(engine, purchase("p-2", "1000000.00", 3)).decisions[0].granted == 0  # the cap is used up
    payment = first.instructions[0]
    assert payment.instruction_id == instruction_id_of(POLICY, "compute-voucher", "scc-billing", "p-1")  # what a void names
    voided = decide(engine, void(payment.instruction_id, "p-1", 4))
    (decision,), (clawback,) = voided.decisions, voided.instructions
    assert (decision.outcome, decision.granted, decision.corrects) == ("clawed-back", -500_000_000, "p-1")
    assert (clawback.kind, clawback.amount, clawback.corrects, clawback.payee.id) == ("clawback", -500_000_000, payment.instruction_id, PROVIDER["uscc"])
    assert clawback.beneficiary.id == BUYER["uscc"] and clawback.fiscal_year == 2026
    assert clawback.computation.void is not None and clawback.computation.void.operator == "wang.fang"
    assert set(clawback.computation.caps_released) == {step.scope for step in payment.computation.caps}
    assert decide(engine, purchase("p-3", "1000000.00", 5)).decisions[0].granted == 60_000_000  # the room is back
    # what subsidy-decisions and disbursement-instructions publish, as their schemas say
    assert outputs.Decision.model_validate(decision.to_wire()).topic == "payment-voids"
    outputs.DisbursementInstruction.model_validate(clawback.to_wire())


def test_a_redelivered_void_re_emits_its_decision_and_a_second_void_or_a_wrong_payment_is_refused():
    engine = Engine(POLICY, {})
    payment = decide(engine, purchase("p-1", "1000.00", 2)).instructions[0]
    first = decide(engine, void(payment.instruction_id, "p-1", 4))
    again = decide(engine, void(payment.instruction_id, "p-1", 4))
    assert again.duplicate and [d.to_wire() for d in again.decisions[1:]] == [d.to_wire() for d in first.decisions]  # after the payment's
    reused = decide(engine, void(payment.instruction_id, "p-1", 4, reason="another reason"))
    assert reused.rejection is not None and reused.rejection[0] == "event-id-reused"
    other = decide(engine, purchase("p-2", "1000.00", 2)).instructions[0]
    wrong = decide(engine, void(other.instruction_id, "p-1", 4))  # names p-2's payment as p-1's
    assert wrong.rejection is not None and wrong.rejection[0] == "unknown-payment"
    unknown = decide(engine, void("0" * 32, "p-9", 4))
    assert unknown.rejection is not None and unknown.rejection[0] == "unknown-payment"


def test_a_refund_after_a_void_claws_back_nothing_more():
    engine = Engine(POLICY, {})
    payment = decide(engine, purchase("p-1", "1000.00", 2)).instructions[0]
    decide(engine, void(payment.instruction_id, "p-1", 4))
    refund = {"event_id": "r-1", "source": "scc-billing", "occurred_at": dt.datetime(2026, 3, 6, tzinfo=CST).isoformat(), "beneficiary": BUYER,
              "provider": PROVIDER, "amount": "500.00", "invoice_no": "INV-r-1", "refund_of": "p-1"}
    (decision,) = decide(engine, ("compute-purchases", json.dumps(refund).encode())).decisions
    assert (decision.outcome, decision.granted) == ("adjusted", 0)


@pytest.mark.parametrize("changes, code", [
    ({"source": "somebody"}, "unknown-source"),
    ({"event_id": "void-1"}, "invalid-field"),  # a payment is voided once: the event id is the payment's
    ({"operator": ""}, "invalid-field"),
    ({"payment": {"instruction_id": "a" * 32, "clause_id": "no-such-clause", "source": "scc-billing", "event_id": "p-1"}}, "unknown-clause"),
])
def test_intake_refuses_a_void_it_cannot_route(changes, code):
    topic, raw = void("a" * 32, "p-1", 4)
    message = {**json.loads(raw), **changes}
    if "payment" in changes:
        message["event_id"] = f"void-{changes['payment']['instruction_id']}"
    with pytest.raises(Rejected) as refused:
        intake(topic, json.dumps(message).encode(), POLICY)
    assert refused.value.code == code


def test_a_replay_decides_a_void_in_event_time_order_whatever_its_place_in_the_file(tmp_path: Path):
    """The void's line comes first in the file; the replay still decides it after the payment it
    voids (by occurred_at) and before the purchase that takes the room."""
    engine = Engine(POLICY, {})
    payment = decide(engine, purchase("p-1", "8333333.34", 2)).instructions[0]
    events = [void(payment.instruction_id, "p-1", 4), purchase("p-1", "8333333.34", 2), purchase("p-3", "1000000.00", 5)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"topic": t, "value": json.loads(raw)}, ensure_ascii=False) + "\n" for t, raw in events), encoding="utf-8")
    summary = replay(path, POLICY, None)
    assert summary.rejected == 0
    assert summary.granted == {"compute-voucher": {"2026": 60_000_000}}


def test_explain_reproduces_a_void_and_names_who_voided_it():
    engine = Engine(POLICY, {})
    paid = decide(engine, purchase("p-1", "1000.00", 2))
    voided = decide(engine, void(paid.instructions[0].instruction_id, "p-1", 4))
    explanation = explain(POLICY, decision=voided.decisions[0].to_wire(), instruction=voided.instructions[0].to_wire(), original=paid.decisions[0].to_wire())
    assert explanation.reproduced, explanation.differences
    working = explanation.to_json()["working"]
    assert working["voided_by"] == {"operator": "wang.fang", "reason": "account closed, payee deregistered"} and not working["superseded"]
    assert working["clawback"] == "600.00"


def test_each_programme_says_how_long_a_rejected_or_returned_payment_waits_before_it_is_voided():
    both = load_policy(f"{DEFAULT_POLICY_PATH}{os.pathsep}{DEFAULT_POLICY_PATH.parent / 'chengdu-high-tech-zone-2025.yaml'}")
    for clause in ("compute-voucher", "hitech-compute-voucher"):
        dated = both.programme_of(clause).void_unpaid_after
        assert dated is not None and dated.at(dt.date(2026, 6, 1)) == dt.timedelta(days=180)


def test_a_void_or_refund_read_again_before_its_payment_re_emits_the_payment_first():
    """After a restart, claims decided before are re-emitted in the order they are read again: a
    void (another topic) or a refund read before its purchase must not reach the ledger before the
    payment it claws back, which the ledger refuses."""
    engine = Engine(POLICY, {})
    paid = decide(engine, purchase("p-1", "1000.00", 2))
    refunded = decide(engine, purchase("p-2", "1000.00", 2))
    refund = {"event_id": "r-2", "source": "scc-billing", "occurred_at": dt.datetime(2026, 3, 3, tzinfo=CST).isoformat(), "beneficiary": BUYER,
              "provider": PROVIDER, "amount": "500.00", "invoice_no": "INV-r-2", "refund_of": "p-2"}
    first_refund = decide(engine, ("compute-purchases", json.dumps(refund).encode()))
    first_void = decide(engine, void(paid.instructions[0].instruction_id, "p-1", 4))
    for original, first, event in ((paid, first_void, void(paid.instructions[0].instruction_id, "p-1", 4)),
                                   (refunded, first_refund, ("compute-purchases", json.dumps(refund).encode()))):
        again = decide(engine, event)
        assert again.duplicate
        assert [i.instruction_id for i in again.instructions] == [original.instructions[0].instruction_id, first.instructions[0].instruction_id]
        assert [d.to_wire() for d in again.decisions] == [original.decisions[0].to_wire(), first.decisions[0].to_wire()]
    assert [i.kind for i in decide(engine, purchase("p-1", "1000.00", 2)).instructions] == ["payment"]  # a payment re-emits itself only
