"""rules/event_time.py: claims take budget in the order they happened, whatever the order they arrive.

The shipped policy: compute-voucher claims wait 2 days (allowed_lateness P2D), award claims 0;
compute-voucher pays 60% up to 5,000,000.00 per buyer a year, so the order of one buyer's
purchases decides which of them is cut by the cap.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parties import enterprise
from rules.engine import Engine
from rules.event_time import EventTimeOrder, format_late_by, in_event_time_order, order_key
from rules.intake import Claim, intake
from rules.policy import SHIPPED_PROGRAMMES, load_policy
from schemas.outputs import Decision

POLICY = load_policy()
CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=CST)
INPUTS = [("compute-purchases", 0), ("compute-purchases", 1), ("award-announcements", 0)]
NEVER = dt.datetime.max.replace(tzinfo=dt.timezone.utc)  # a watermark past every claim
SOURCES = sorted(POLICY.sources["compute-purchases"])


def purchase(event_id: str, when: dt.datetime, buyer: int = 1, amount: str = "1000000.00", source: str = "scc-billing") -> Claim:
    message = {
        "event_id": event_id, "source": source, "occurred_at": when.isoformat(), "beneficiary": enterprise(buyer),
        "provider": enterprise(1, kind=1), "invoice_no": f"INV-{event_id}", "amount": amount,
    }
    [claim] = intake("compute-purchases", json.dumps(message, ensure_ascii=False).encode(), POLICY)
    return claim


def award(event_id: str, when: dt.datetime, subject: str) -> Claim:
    message = {
        "event_id": event_id, "source": "gov-review-system", "occurred_at": when.isoformat(), "beneficiary": enterprise(2),
        "award": "benchmark-scenario", "approval_ref": f"成经信〔2026〕{event_id}号", "subject": subject, "base_amount": "1000000.00",
    }
    [claim] = intake("award-announcements", json.dumps(message, ensure_ascii=False).encode(), POLICY)
    return claim


def everything_read_up_to(order: EventTimeOrder, watermark: dt.datetime) -> None:
    for source in INPUTS:
        order.progress(source, watermark)


def test_nothing_is_released_until_every_input_has_reported():
    order = EventTimeOrder(POLICY, INPUTS, {})
    order.offer(award("a1", T0, "场景1"))
    order.progress(INPUTS[0], T0 + dt.timedelta(days=9))
    order.progress(INPUTS[1], T0 + dt.timedelta(days=9))
    assert order.watermark is None and order.release() == []
    order.progress(INPUTS[2], T0 + dt.timedelta(seconds=1))
    assert [c.event_id for c in order.release()] == ["a1"]


def test_a_claim_waits_its_clauses_allowed_lateness_and_is_released_strictly_after_it():
    order = EventTimeOrder(POLICY, INPUTS, {})
    order.offer(purchase("p1", T0))
    order.offer(award("a1", T0, "场景1"))
    everything_read_up_to(order, T0)  # another claim at T0 may still come: nothing yet
    assert order.release() == []
    everything_read_up_to(order, T0 + dt.timedelta(microseconds=1))
    assert [c.event_id for c in order.release()] == ["a1"]  # awards wait 0
    everything_read_up_to(order, T0 + dt.timedelta(days=2))
    assert order.release() == [] and order.held == 1
    everything_read_up_to(order, T0 + dt.timedelta(days=2, microseconds=1))
    assert [c.event_id for c in order.release()] == ["p1"] and order.held == 0


def test_claims_leave_in_order_of_occurred_at_then_source_then_event_id_across_offsets():
    order = EventTimeOrder(POLICY, INPUTS, {})
    same_instant = T0.astimezone(dt.timezone.utc)  # the same time as T0, written with another offset
    claims = [
        purchase("p9", T0 + dt.timedelta(hours=1)),
        purchase("p2", same_instant, source="tianfu-compute-billing"),
        purchase("p3", T0),
        purchase("p1", T0, source="scc-billing"),
        purchase("p0", T0 - dt.timedelta(seconds=1), source="tianfu-compute-billing"),
    ]
    for claim in claims:
        assert order.offer(claim) is None
    everything_read_up_to(order, NEVER)
    released = [(c.source, c.event_id) for c in order.release()]
    assert released == [("tianfu-compute-billing", "p0"), ("scc-billing", "p1"), ("scc-billing", "p3"), ("tianfu-compute-billing", "p2"), ("scc-billing", "p9")]
    assert [(c.source, c.event_id) for c in in_event_time_order(claims)] == released


def test_a_claim_behind_one_already_released_is_decided_at_once_and_its_decision_says_how_late():
    order = EventTimeOrder(POLICY, INPUTS, {})
    engine = Engine(POLICY, {})
    order.offer(purchase("p2", T0, amount="8000000.00"))
    everything_read_up_to(order, T0 + dt.timedelta(days=3))
    [first] = order.release()
    assert engine.decide(first).decisions[0].late_by is None
    late = order.offer(purchase("p1", T0 - dt.timedelta(hours=3, seconds=1), amount="1000000.00"))
    assert late is not None and late.claim.event_id == "p1" and late.late_by == "PT3H1S"
    decision = engine.decide(late.claim, late_by=late.late_by).decisions[0].to_wire()
    # it came after the buyer's cap was used by a later purchase: it gets what was left, and says why
    assert decision["late_by"] == "PT3H1S" and decision["granted"] == "200000.00" and decision["declined_by"] == "buyer-year"
    Decision.model_validate(decision)
    tied = order.offer(purchase("p1b", T0, source="cloud-hub-billing"))  # the same time, lost on the tie-break
    assert tied is not None and tied.late_by == "PT0S"
    assert order.held == 0


def test_a_copy_of_a_held_claim_is_held_once_and_a_reused_event_id_beside_it():
    order = EventTimeOrder(POLICY, INPUTS, {})
    engine = Engine(POLICY, {})
    original = purchase("p1", T0)
    order.offer(original)
    order.offer(purchase("p1", T0))  # a redelivery
    reused = purchase("p1", T0, amount="2.00")  # same ids, other content
    order.offer(reused)
    everything_read_up_to(order, NEVER)
    released = order.release()
    assert released == [original, reused]
    assert engine.decide(released[0]).decisions[0].granted == 600000_00
    assert engine.decide(released[1]).rejection[0] == "event-id-reused"


def test_watermarks_only_move_forward_and_only_for_expected_inputs():
    state: dict = {}
    order = EventTimeOrder(POLICY, INPUTS, state)
    everything_read_up_to(order, T0)
    order.progress(INPUTS[0], T0 - dt.timedelta(days=1))
    assert order.watermark == "2026-03-01T02:00:00.000000"
    assert state['["watermark", "compute-purchases", 0]'] == {"at": "2026-03-01T02:00:00.000000"}
    with pytest.raises(ValueError, match="not one of the inputs"):
        order.progress(("model-invoices", 0), T0)
    with pytest.raises(ValueError, match="no offset"):
        order.progress(INPUTS[0], T0.replace(tzinfo=None))
    with pytest.raises(ValueError, match="needs the inputs"):
        EventTimeOrder(POLICY, [], {})


def test_a_restarted_order_goes_on_from_its_state_exactly():
    state: dict = {}
    order = EventTimeOrder(POLICY, INPUTS, state)
    for n, hours in enumerate((5, 1, 3, 80)):
        order.offer(purchase(f"p{n}", T0 + dt.timedelta(hours=hours)))
    everything_read_up_to(order, T0 + dt.timedelta(days=2, hours=2))
    assert [c.event_id for c in order.release()] == ["p1"]
    assert sorted(json.loads(key)[0] for key in state) == ["held"] * 3 + ["released"] + ["watermark"] * 3
    again = EventTimeOrder(POLICY, INPUTS, dict(state))
    assert again.watermark == order.watermark and again.held == 3
    late = again.offer(purchase("p4", T0))
    assert late is not None and late.late_by == "PT1H"
    everything_read_up_to(again, NEVER)
    assert [c.event_id for c in again.release()] == ["p2", "p0", "p3"]


def test_the_claims_of_one_event_under_several_clauses_leave_in_the_policys_clause_order_as_in_the_replay():
    """An invoice both programmes pay makes a claim of each: same occurred_at, source and event_id.
    They leave in the policy's order of clauses, as the replay sorts them, whichever clause's claims
    the order happened to hold first (here a later invoice's district claim alone, as when a void
    of it is read first): 就高不重复 pays whichever comes first."""
    both = load_policy(SHIPPED_PROGRAMMES)

    def invoice(event_id: str, when: dt.datetime) -> list[Claim]:
        message = {"event_id": event_id, "source": "model-vendor-billing", "occurred_at": when.isoformat(), "beneficiary": enterprise(3),
                   "vendor": enterprise(4), "invoice_no": f"INV-{event_id}", "amount": "1000.00", "billing_period": "2026-03", "project_ref": "PRJ-1"}
        return intake("model-invoices", json.dumps(message, ensure_ascii=False).encode(), both)

    earlier, later = invoice("i-1", T0), invoice("i-2", T0 + dt.timedelta(hours=1))
    assert [c.clause_id for c in earlier] == ["model-usage", "hitech-model-support"]
    order = EventTimeOrder(both, [("model-invoices", 0)], {})
    for claim in [later[1], *earlier]:
        order.offer(claim)
    order.progress(("model-invoices", 0), NEVER)
    assert order.release() == in_event_time_order([*earlier, later[1]])


def test_late_by_is_an_iso_8601_duration():
    assert format_late_by(dt.timedelta(0)) == "PT0S"
    assert format_late_by(dt.timedelta(days=2)) == "P2D"
    assert format_late_by(dt.timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=500_000)) == "P1DT2H3M4.5S"
    assert format_late_by(dt.timedelta(minutes=90)) == "PT1H30M"
    assert format_late_by(dt.timedelta(microseconds=1)) == "PT0.000001S"


# --- any arrival order that the watermarks allow ---------------------------------------

LATENESS = dt.timedelta(days=2)  # compute-voucher's, on every day of these claims
MINUTES = st.one_of(st.sampled_from([0, 60, 2880]), st.integers(0, 6 * 24 * 60))  # ties, and a spread wider than the lateness
CLAIMS = st.lists(
    st.tuples(MINUTES, st.integers(1, 3), st.sampled_from(["1000000.00", "3000000.00", "6000000.00"]), st.sampled_from(SOURCES)),
    min_size=1, max_size=20,
)


def _decide_all(claims: list[Claim]) -> list[dict]:
    engine = Engine(POLICY, {})
    return [decision.to_wire() for claim in claims for decision in engine.decide(claim).decisions]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CLAIMS, st.data())
def test_any_arrival_the_watermarks_allow_releases_the_sorted_order_and_decides_as_the_replay(specs, data):
    claims = [purchase(f"e{n}", T0 + dt.timedelta(minutes=minutes), buyer, amount, source) for n, (minutes, buyer, amount, source) in enumerate(specs)]
    arrival = data.draw(st.permutations(claims), label="arrival")
    restart_at = data.draw(st.integers(0, len(arrival)), label="restart before arrival")
    state: dict = {}
    order = EventTimeOrder(POLICY, INPUTS, state)
    released: list[Claim] = []
    for step, claim in enumerate(arrival):
        if step == restart_at:
            state = dict(state)  # what the changelog restores
            order = EventTimeOrder(POLICY, INPUTS, state)
        # intake reports progress, but never past a claim still to arrive (its occurred_at + lateness)
        still_to_come = min(dt.datetime.fromisoformat(c.occurred_at) + LATENESS for c in arrival[step:])
        for source in data.draw(st.lists(st.sampled_from(INPUTS), max_size=3), label="reports"):
            minutes = data.draw(st.integers(0, 10 * 24 * 60), label="watermark")
            order.progress(source, min(T0 + dt.timedelta(minutes=minutes), still_to_come))
        assert order.offer(claim) is None, "no claim is late when the watermarks never passed it"
        if data.draw(st.booleans(), label="release now"):
            released += order.release()
    everything_read_up_to(order, NEVER)
    released += order.release()
    assert order.held == 0 and not any(json.loads(key)[0] == "held" for key in state)
    expected = in_event_time_order(claims)
    assert [order_key(c) for c in released] == [order_key(c) for c in expected]
    assert _decide_all(released) == _decide_all(expected)
