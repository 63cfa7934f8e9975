"""rules/explain.py: every kind of outcome the engine writes is recomputed from its record and the
policy alone, to the fen; a record that departs from the policy or from its own inputs is named.

The records are the engine's, from claims made by intake of contract messages, as in the ledger."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parties import enterprise, person
from rules.engine import Engine
from rules.explain import ClawbackWorking, ExplainError, PaymentWorking, RefundWorking, explain
from rules.intake import intake
from rules.money import format_fen
from rules.policy import DEFAULT_POLICY_PATH, parse_policy

SHIPPED_TEXT = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
SHIPPED = parse_policy(SHIPPED_TEXT.encode(), "policy.yaml")


def edited(*replacements: tuple[str, str]):
    text = SHIPPED_TEXT
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return parse_policy(text.encode(), "edited-policy.yaml")


# programme budget 3,000.00 and 3 benchmark scenarios a year, so that programme caps bind
SMALL = edited(('value: "100000000.00", basis: stated', 'value: "3000.00", basis: stated'), ("value: 20, basis: stated", "value: 3, basis: stated"))
DAY = "2026-03-01T10:00:00+08:00"


class Ledgerless:
    """Intake and the engine over a dict, keeping every record as the ledger would."""

    def __init__(self, policy=SHIPPED):
        self.policy = policy
        self.engine = Engine(policy, {})
        self.decisions: dict[str, dict] = {}  # event_id -> decision
        self.instructions: dict[str, dict] = {}  # instruction_id -> instruction

    def send(self, topic: str, **message) -> dict | None:
        """The decision of the message, or None when the engine rejects it (an over-refund)."""
        message.setdefault("source", {"compute-purchases": "scc-billing", "award-announcements": "gov-review-system", "model-invoices": "model-vendor-billing"}[topic])
        message.setdefault("occurred_at", DAY)
        message.setdefault("beneficiary", enterprise(1))
        if topic == "compute-purchases":
            message.setdefault("provider", enterprise(1, kind=1))
            message.setdefault("invoice_no", f"INV-{message['event_id']}")
        if topic == "award-announcements":
            message.setdefault("approval_ref", f"REF-{message['event_id']}")
        (claim,) = intake(topic, json.dumps(message, ensure_ascii=False).encode(), self.policy)
        out = self.engine.decide(claim)
        if out.rejection:
            return None
        (record,) = out.decisions
        decision = record.to_wire()
        self.decisions[decision["event_id"]] = decision
        for instruction in out.instructions:
            self.instructions[instruction.instruction_id] = instruction.to_wire()
        return decision

    def buy(self, event_id: str, amount: str, **message) -> dict | None:
        return self.send("compute-purchases", event_id=event_id, amount=amount, **message)

    def award(self, event_id: str, award: str, subject: str, **message) -> dict | None:
        return self.send("award-announcements", event_id=event_id, award=award, subject=subject, **message)

    def explained(self, decision: dict):
        """The decision explained three ways (with its instruction, alone, the instruction alone), which must agree."""
        instruction = self.instructions.get(decision["instruction_id"]) if decision["instruction_id"] else None
        original = self.decisions.get(decision["corrects"]) if decision["corrects"] else None
        both = explain(self.policy, decision=decision, instruction=instruction, original=original)
        assert both.reproduced, both.differences
        alone = explain(self.policy, decision=decision, original=original)
        assert alone.reproduced and alone.recomputed == both.recomputed, alone.differences
        if instruction is not None:
            only = explain(self.policy, instruction=instruction, original=original)
            assert only.reproduced and only.recomputed == both.recomputed, only.differences
        return both


# --- every kind of outcome --------------------------------------------------------------------


def test_granted_share_shows_the_values_used_with_their_basis_and_reference():
    run = Ledgerless()
    e = run.explained(run.buy("p1", "1250000.00"))
    assert e.paid == e.recomputed == 750_000_00 and e.paid_by == "instruction"
    w = e.working
    assert isinstance(w, PaymentWorking)
    assert (w.base, str(w.rate), w.entitlement, w.granted, w.stopped_by) == (1_250_000_00, "0.60", 750_000_00, 750_000_00, None)
    assert [(s.cap_id, s.limit, s.used_before, s.room_before, s.cut) for s in w.caps] == [
        ("buyer-year", 5_000_000_00, 0, 5_000_000_00, 0), ("programme-year", 100_000_000_00, 0, 100_000_000_00, 0)]
    values = {v.name: v for v in e.values}
    assert list(values) == ["paid party", "rate", "cap buyer-year", "cap programme-year"]
    assert (values["paid party"].value, values["paid party"].basis) == ("provider", "assumed")
    assert (values["rate"].value, str(values["rate"].start), values["rate"].basis, values["rate"].reference) == (
        "0.60", "2025-08-28", "stated", "最高可抵扣不超过60%的算力购买费用")
    assert values["cap programme-year"].value == "100,000,000.00"
    assert e.clause.id == "compute-voucher" and "算力券" in e.clause.text


def test_partly_granted_by_a_cap_per_beneficiary_then_declined_by_it():
    run = Ledgerless()
    run.buy("p1", "8000000.00")  # 4,800,000.00
    e = run.explained(run.buy("p2", "500000.00"))  # 300,000.00, 200,000.00 left
    w = e.working
    assert isinstance(w, PaymentWorking) and w.stopped_by == "buyer-year" and w.granted == 200_000_00
    assert [(s.cap_id, s.used_before, s.room_before, s.cut, s.granted_after) for s in w.caps] == [
        ("buyer-year", 4_800_000_00, 200_000_00, 100_000_00, 200_000_00), ("programme-year", 4_800_000_00, 95_200_000_00, 0, 200_000_00)]
    e = run.explained(run.buy("p3", "100.00"))
    assert isinstance(e.working, PaymentWorking) and e.working.granted == 0 and e.decision["outcome"] == "declined"
    assert [s.cap_id for s in e.working.caps] == ["buyer-year"], "the engine stops at the cap that leaves nothing"


def test_partly_granted_by_the_programme_budget():
    run = Ledgerless(SMALL)
    run.buy("p1", "3000.00", beneficiary=enterprise(1))  # 1,800.00
    e = run.explained(run.buy("p2", "3000.00", beneficiary=enterprise(2)))  # 1,800.00, 1,200.00 left in the budget
    assert isinstance(e.working, PaymentWorking) and e.working.stopped_by == "programme-year"
    assert [(s.cap_id, s.room_before, s.cut) for s in e.working.caps] == [("buyer-year", 5_000_000_00, 0), ("programme-year", 1_200_00, 600_00)]
    assert e.paid == 1_200_00


def test_amount_cap_per_subject_and_count_cap_of_distinct_subjects():
    run = Ledgerless(SMALL)
    e = run.explained(run.award("a1", "benchmark-scenario", "s1", base_amount="5000000.00"))  # 1,500,000.00 -> 1,000,000.00
    assert isinstance(e.working, PaymentWorking) and e.working.stopped_by == "per-scenario" and e.paid == 1_000_000_00
    assert e.working.caps[1].kind == "count" and e.working.caps[1].adds == 1
    e = run.explained(run.award("a2", "benchmark-scenario", "s1", base_amount="100.00", beneficiary=enterprise(2)))
    assert isinstance(e.working, PaymentWorking) and e.working.granted == 0, "s1 has had its 1,000,000.00"
    run.award("a3", "benchmark-scenario", "s2", base_amount="100.00")
    run.award("a4", "benchmark-scenario", "s3", base_amount="100.00")
    e = run.explained(run.award("a5", "benchmark-scenario", "s4", base_amount="100.00"))  # a fourth scenario of 3
    assert isinstance(e.working, PaymentWorking) and e.working.stopped_by == "scenarios-year" and e.working.granted == 0
    assert [(s.kind, s.limit, s.used_before, s.room_before, s.cut) for s in e.working.caps][1] == ("count", 3, 3, 0, 30_00)
    e = run.explained(run.award("a6", "benchmark-scenario", "s2", base_amount="100.00"))  # s2 again: counted already
    assert isinstance(e.working, PaymentWorking) and e.working.caps[1].adds == 0 and e.working.granted == 30_00


def test_count_cap_once_per_subject_and_a_fixed_amount():
    run = Ledgerless()
    e = run.explained(run.award("g1", "green-datacenter", "dc-1"))
    assert isinstance(e.working, PaymentWorking) and e.working.rate is None and e.working.entitlement == 1_000_000_00
    assert [v.name for v in e.values] == ["paid party", "amount", "cap once-per-datacentre"]
    e = run.explained(run.award("g2", "green-datacenter", "dc-1"))
    assert isinstance(e.working, PaymentWorking) and e.working.stopped_by == "once-per-datacentre" and e.paid == 0


@pytest.mark.parametrize("grade, amount, value_name", [("特等奖", 500_000_00, "amount for grade 特等奖"), ("一等奖", 200_000_00, "amount for other grades (一等奖)")])
def test_awards_by_grade(grade, amount, value_name):
    run = Ledgerless()
    e = run.explained(run.award("w1", "wu-wenjun-award", "work-1", grade=grade, beneficiary=person(1)))
    assert isinstance(e.working, PaymentWorking) and e.working.grade == grade and e.paid == amount
    assert {v.name: v.basis for v in e.values}[value_name] == "assumed"


def test_clawback_partial_then_whole_releases_room_under_every_cap():
    run = Ledgerless()
    run.buy("p1", "8000000.00")  # 4,800,000.00
    e = run.explained(run.buy("r1", "1000000.00", refund_of="p1"))  # net 7,000,000.00: 4,200,000.00, claw back 600,000.00
    w = e.working
    assert isinstance(w, ClawbackWorking) and e.paid == -600_000_00 and e.decision["outcome"] == "clawed-back"
    assert (w.original_base, w.refund, w.net_base, w.entitlement, w.granted_before, w.granted_after) == (
        8_000_000_00, 1_000_000_00, 7_000_000_00, 4_200_000_00, 4_800_000_00, 4_200_000_00)
    assert [(r.cap_id, r.amount) for r in w.releases] == [("buyer-year", 600_000_00), ("programme-year", 600_000_00)]
    assert w.corrects_event == "p1" and w.corrects_instruction == run.decisions["p1"]["instruction_id"]
    e = run.explained(run.buy("r2", "7000000.00", refund_of="p1"))
    assert isinstance(e.working, ClawbackWorking) and e.working.refunded_before == 1_000_000_00 and e.paid == -4_200_000_00


def test_adjusted_and_refund_recorded_and_a_payment_netted_by_an_earlier_refund():
    run = Ledgerless()
    run.buy("p1", "10000000.00")  # 6,000,000.00 -> 5,000,000.00
    e = run.explained(run.buy("r1", "1000000.00", refund_of="p1"))  # 5,400,000.00 still above: nothing back
    assert isinstance(e.working, ClawbackWorking) and e.working.clawback == 0 and e.decision["outcome"] == "adjusted" and e.instruction is None
    e = run.explained(run.buy("r9", "400.00", refund_of="p9"))  # before its purchase
    assert isinstance(e.working, RefundWorking) and (e.working.refund, e.working.refunded_total, e.paid) == (400_00, 400_00, 0)
    e = run.explained(run.buy("p9", "1000.00", beneficiary=enterprise(2)))
    assert isinstance(e.working, PaymentWorking) and (e.working.refunded_before, e.working.net_base, e.paid) == (400_00, 600_00, 360_00)


def test_a_value_not_in_force_declines_and_is_reproduced():
    policy = edited(('- {from: 2025-08-28, value: "0.60"', '- {from: 2026-06-01, value: "0.60"'))
    run = Ledgerless(policy)
    e = run.explained(run.buy("p1", "1000.00"))
    assert isinstance(e.working, PaymentWorking) and e.working.entitlement is None and e.working.stopped_by == "not-in-force"
    assert {v.name: v.value for v in e.values}["rate"] == "none in force"


def test_event_time_order_is_shown_where_the_decision_carries_it():
    run = Ledgerless()
    decision = run.buy("p1", "1000.00")
    assert explain(SHIPPED, decision=decision).order == {"order_key": [DAY, "scc-billing", "p1"], "late_by": None}
    without = {key: value for key, value in decision.items() if key != "late_by"}
    assert explain(SHIPPED, decision=without).order == {}, "decisions made before event-time ordering say nothing of it"
    late = explain(SHIPPED, decision={**decision, "late_by": "PT2H"})
    assert late.order == {"order_key": [DAY, "scc-billing", "p1"], "late_by": "PT2H"} and late.reproduced


# --- records that do not reproduce ----------------------------------------------------------


def _paid_record(run: Ledgerless) -> tuple[dict, dict]:
    decision = run.buy("p1", "1250000.00")
    return decision, run.instructions[decision["instruction_id"]]


def test_a_changed_amount_is_named_with_both_figures():
    run = Ledgerless()
    decision, instruction = _paid_record(run)
    tampered = {**instruction, "amount": "760000.00"}
    e = explain(SHIPPED, decision=decision, instruction=tampered)
    assert not e.reproduced and e.recomputed == 750_000_00 and e.paid == 760_000_00
    assert [(d.what, d.recomputed, d.recorded) for d in e.differences] == [("amount paid (the instruction)", "750,000.00", "760,000.00")]
    e = explain(SHIPPED, decision={**decision, "granted": "760000.00"})
    assert [d.what for d in e.differences] == ["amount paid (the decision)"]


def test_the_amount_is_recomputed_not_read_back():
    run = Ledgerless()
    decision, instruction = _paid_record(run)
    for path, value, named in [(("base",), "1300000.00", "entitlement before caps"), (("caps", 1, "used_before"), "99500000.00", "cap programme-year room before"),
                               (("rate",), "0.70", "rate"), (("caps", 0, "limit"), "500000.00", "cap buyer-year limit")]:
        record = copy.deepcopy(instruction)
        target = record["computation"]
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        e = explain(SHIPPED, instruction=record)
        assert not e.reproduced and named in [d.what for d in e.differences], (path, e.differences)
        if path[0] in ("base", "caps") and path[-1] != "limit":  # an input changed: the amount follows it
            assert e.differences[0].what == "amount paid (the instruction)", e.differences


def test_a_clawback_of_more_than_was_granted_is_named():
    run = Ledgerless()
    run.buy("p1", "1000.00")  # 600.00
    refund = run.buy("r1", "500.00", refund_of="p1")  # 300.00 back
    record = copy.deepcopy(refund)
    record["computation"]["granted_before"] = "700.00"
    e = explain(SHIPPED, decision=record, original=run.decisions["p1"])
    assert e.recomputed == -400_00 and [(d.what, d.recomputed, d.recorded) for d in e.differences][:2] == [
        ("amount paid (the decision)", "-400.00", "-300.00"), ("granted before", "at most 600.00, the original's grant", "700.00")]


def test_another_policy_version_or_figure_is_a_difference():
    run = Ledgerless()
    decision, instruction = _paid_record(run)
    e = explain(edited(('version: "2025.08-r1"', 'version: "2026.01-r2"')), decision=decision, instruction=instruction)
    assert [(d.what, d.recomputed, d.recorded) for d in e.differences] == [("policy", "chengdu-ai-2025 2026.01-r2", "chengdu-ai-2025 2025.08-r1")]
    e = explain(edited(('value: "0.60", basis: stated', 'value: "0.50", basis: stated')), decision=decision, instruction=instruction)
    assert e.recomputed == 625_000_00 and e.differences[0].what == "amount paid (the instruction)" and "rate" in [d.what for d in e.differences]


def test_records_that_cannot_be_explained():
    run = Ledgerless()
    decision, _ = _paid_record(run)
    with pytest.raises(ExplainError, match="clause 'nope' is not in policy file"):
        explain(SHIPPED, decision={**decision, "clause_id": "nope"})
    refund = run.buy("r1", "1000.00", refund_of="p1")
    with pytest.raises(ExplainError, match="the decision of the payment it corrects is needed"):
        explain(SHIPPED, decision=refund)
    with pytest.raises(ExplainError, match="not money"):
        explain(SHIPPED, decision={**decision, "granted": 1.5})


def test_json_form():
    run = Ledgerless()
    decision, instruction = _paid_record(run)
    out = explain(SHIPPED, decision=decision, instruction=instruction).to_json()
    assert list(out) == ["decision_id", "instruction_id", "outcome", "policy", "clause", "event", "payee", "beneficiary", "values_day", "values",
                         "working", "order", "paid", "paid_by", "recomputed", "reproduced", "differences"]
    assert (out["paid"], out["recomputed"], out["reproduced"], out["differences"]) == ("750000.00", "750000.00", True, [])
    assert out["working"]["caps"][0] == {"cap": "buyer-year", "kind": "amount", "scope": instruction["computation"]["caps"][0]["scope"], "limit": "5000000.00",
                                         "used_before": "0.00", "room_before": "5000000.00", "granted_before": "750000.00", "cut": "0.00", "granted_after": "750000.00"}
    assert out["values"][1] == {"name": "rate", "value": "0.60", "from": "2025-08-28", "basis": "stated", "reference": "最高可抵扣不超过60%的算力购买费用"}
    json.dumps(out)


# --- any sequence -----------------------------------------------------------------------------

purchase = st.tuples(st.integers(0, 3), st.sampled_from(["2026-03-01T10:00:00+08:00", "2026-12-31T16:30:00Z"]), st.integers(1, 250_000))
announcement = st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 2_000_000))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(purchase.map(lambda p: ("buy", p)), announcement.map(lambda a: ("award", a)), st.integers(0, 30).map(lambda r: ("refund", r))),
                max_size=40), st.randoms(use_true_random=False))
def test_every_record_of_any_sequence_reproduces(steps, random):
    """Purchases, refunds of any of them (before or after, partial or whole) and scenarios, under caps that bind."""
    run = Ledgerless(SMALL)
    for n, (kind, spec) in enumerate(steps):
        if kind == "buy":
            buyer, when, fen = spec
            run.buy(f"p{n}", format_fen(fen * 100), beneficiary=enterprise(buyer), occurred_at=when)
        elif kind == "award":
            who, subject, fen = spec
            run.award(f"a{n}", "benchmark-scenario", f"s{subject}", base_amount=format_fen(fen), beneficiary=enterprise(who))
        else:  # of a purchase decided already, or to come, or never; more than it may be rejected
            run.buy(f"r{n}", format_fen(random.randint(1, 50_000_000)), refund_of=f"p{spec}", beneficiary=enterprise(0))
    for decision in run.decisions.values():
        run.explained(decision)


def test_a_payee_outside_chengdu_is_explained_as_not_eligible_and_reproduced():
    raw = json.loads((Path(__file__).parents[2] / "schemas/examples/compute-purchases.json").read_text(encoding="utf-8"))
    raw["provider"]["uscc"] = "91110108MA01ABCD0B"  # registered in Beijing (110108)
    (claim,) = intake("compute-purchases", json.dumps(raw).encode(), SHIPPED)
    (record,) = Engine(SHIPPED, {}).decide(claim).decisions
    decision = record.to_wire()
    explained = explain(SHIPPED, decision=decision)
    assert decision["declined_by"] == "not-eligible" and explained.reproduced and explained.working.stopped_by == "not-eligible"
