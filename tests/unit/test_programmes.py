"""Several programmes in one pipeline, and 就高不重复 across them (issue 28).

The boundaries one by one are scenario files (tests/scenarios/one-project-funded-once.yaml);
here: loading programmes together, a combined cap enforced like any cap, and the property that
the funding of a project does not depend on the order its claims arrive in."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parties import enterprise
from rules.engine import Engine
from rules.explain import explain
from rules.intake import intake
from rules.policy import DEFAULT_POLICY_PATH, PolicyError, combine, load_policy, parse_policy
from subsidy.replay import replay

DISTRICT_PATH = DEFAULT_POLICY_PATH.parent / "chengdu-high-tech-zone-2025.yaml"
CITY = load_policy()
DISTRICT = load_policy(DISTRICT_PATH)
BOTH = load_policy(f"{DEFAULT_POLICY_PATH}{os.pathsep}{DISTRICT_PATH}")
ZONE = "510109"


def purchase(event_id: str, amount: str, *, buyer: int = 1, project: str | None = None, at: dt.datetime | None = None, topic: str = "compute-purchases") -> tuple[str, bytes]:
    message = {
        "event_id": event_id, "source": "scc-billing" if topic == "compute-purchases" else "model-vendor-billing",
        "occurred_at": (at or dt.datetime(2026, 3, 2, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))).isoformat(),
        "beneficiary": enterprise(buyer, division=ZONE), "amount": amount, "invoice_no": f"INV-{event_id}",
    }
    if topic == "compute-purchases":
        message["provider"] = enterprise(1, kind=1, division=ZONE)
    else:
        message["vendor"] = enterprise(1, kind=2, division=ZONE)
        message["billing_period"] = message["occurred_at"][:7]
    if project is not None:
        message["project_ref"] = project
    return topic, json.dumps(message, ensure_ascii=False).encode()


def decide_all(policy, events, state=None):
    engine = Engine(policy, {} if state is None else state)
    return [d for topic, raw in events for claim in intake(topic, raw, policy) for d in engine.decide(claim).decisions]


# --- loading -------------------------------------------------------------------------------


def test_programmes_loaded_together_keep_their_own_id_eligibility_and_claims_key():
    assert BOTH.programme_of("compute-voucher") is not BOTH.programme_of("hitech-compute-voucher")
    assert BOTH.programme_of("hitech-scenario").policy_id == "chengdu-high-tech-zone-2025"
    assert BOTH.claims_key("compute-voucher") == BOTH.claims_key("hitech-compute-voucher") == "ai-projects"
    assert BOTH.claims_key("green-datacenter") == "green-datacenter"
    # one purchase: a claim under each programme, each decided under its own programme
    decisions = decide_all(BOTH, [purchase("p1", "1000.00")])
    assert [(d.policy_id, d.clause_id, d.granted) for d in decisions] == [
        ("chengdu-ai-2025", "compute-voucher", 60000), ("chengdu-high-tech-zone-2025", "hitech-compute-voucher", 30000)]
    # a buyer registered elsewhere in Chengdu: the zone declines, the city pays
    _, raw = purchase("p2", "1000.00")
    raw = raw.replace(f'"{enterprise(1, division=ZONE)["uscc"]}"'.encode(), f'"{enterprise(1)["uscc"]}"'.encode())
    assert [d.declined_by for d in decide_all(BOTH, [("compute-purchases", raw)])] == [None, "not-eligible"]


def test_every_figure_of_the_district_file_is_stated_or_assumed_with_a_reference():
    stated = [v for c in DISTRICT.clauses.values() for cap in c.caps if cap.amount for v in cap.amount.values if v.basis == "stated"]
    assert sorted(v.value for v in stated) == [10_000_000_000] * 3  # 100M a year each, the only figures the notes give
    assert DISTRICT.registration_divisions is not None and DISTRICT.registration_divisions.values[0].basis == "assumed"


def test_a_clause_id_in_two_programmes_is_refused_in_one_line():
    twin = parse_policy(DISTRICT_PATH.read_bytes().replace(b"hitech-compute-voucher:", b"compute-voucher:"), "twin.yaml")
    with pytest.raises(PolicyError, match="clause 'compute-voucher' is also a clause of chengdu-ai-2025"):
        combine([CITY, twin])


def test_a_combined_cap_over_clauses_of_different_project_groups_is_refused():
    split = parse_policy(DISTRICT_PATH.read_bytes().replace(b"trigger: {topic: compute-purchases}\n    project_group: ai-projects",
                                                            b"trigger: {topic: compute-purchases}\n    project_group: compute"), "split.yaml")
    with pytest.raises(PolicyError, match="must share one project_group"):
        combine([CITY, split])


# --- the combined cap ------------------------------------------------------------------------


def test_the_combined_cap_is_charged_by_both_programmes_and_declines_what_crosses_it():
    small = parse_policy(DISTRICT_PATH.read_bytes().replace(b'value: "200000000.00"', b'value: "1000.00"'), "small.yaml")
    both = combine([CITY, small])
    scope = '["cap", "compute-voucher+hitech-compute-voucher", "city-and-district-compute-year", "2026"]'
    state: dict = {}
    first = decide_all(both, [purchase("p1", "1000.00")], state)  # city 600.00, zone 300.00: 900.00 of 1,000.00
    assert [d.granted for d in first] == [60000, 30000] and state[scope]["amount"] == 90000
    second = decide_all(both, [purchase("p2", "1000.00")], state)  # 100.00 left for the city's 600.00, none for the zone
    assert [(d.granted, d.declined_by) for d in second] == [(10000, "city-and-district-compute-year"), (0, "city-and-district-compute-year")]
    assert second[0].computation.caps[-1].scope == scope  # type: ignore[union-attr]


def test_a_superseded_payment_gives_its_room_under_the_combined_cap_back():
    small = parse_policy(DISTRICT_PATH.read_bytes().replace(b'value: "200000000.00"', b'value: "1000.00"'), "small.yaml")
    both = combine([CITY, small])
    scope = '["cap", "compute-voucher+hitech-compute-voucher", "city-and-district-compute-year", "2026"]'
    state: dict = {}
    assert [d.granted for d in decide_all(both, [purchase("p1", "1000.00", project="X")], state)] == [60000, 0]
    # 1,500.00 × 60% = 900.00 fits only once p1's 600.00 is given back: it is, and p1 is clawed back
    later = decide_all(both, [purchase("p2", "1500.00", project="X")], state)
    assert [(d.clause_id, d.outcome, d.granted) for d in later] == [
        ("compute-voucher", "clawed-back", -60000), ("compute-voucher", "granted", 90000), ("hitech-compute-voucher", "declined", 0)]
    assert state[scope]["amount"] == 90000


# --- every arrival order ---------------------------------------------------------------------

# A few claims of a few projects, under both programmes' compute and model clauses, small enough
# that no cap binds: then the net funding of each project is the highest entitlement among its
# claims, under one clause only, whatever order the claims are decided in.
AMOUNTS = st.integers(min_value=1, max_value=2_000_00).map(lambda fen: f"{fen // 100}.{fen % 100:02d}")
EVENT = st.tuples(st.sampled_from(["compute-purchases", "model-invoices"]), AMOUNTS, st.integers(1, 2), st.sampled_from(["A", "B", None]))


def _net(policy, events):
    """(beneficiary, project) -> {clause: net granted}, and the claims' raw entitlements."""
    engine = Engine(policy, {})
    net: dict = defaultdict(lambda: defaultdict(int))
    raw: dict = defaultdict(int)
    for topic, message in events:
        for claim in intake(topic, message, policy):
            for decision in engine.decide(claim).decisions:
                net[(claim.beneficiary["id"], claim.project_ref)][decision.clause_id] += decision.granted
            project = (claim.beneficiary["id"], claim.project_ref)
            decided = engine.state[f'["claim", "{claim.clause_id}", "{claim.source}", "{claim.event_id}"]']["decision"]
            raw[project] = max(raw[project], int(decided["computation"]["raw_entitlement"].replace(".", "")))
    return net, raw


@settings(max_examples=60, deadline=None)
@given(st.lists(EVENT, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_a_project_is_funded_once_at_its_highest_entitlement_in_every_arrival_order(spec, rng):
    events = [purchase(f"e{n}", amount, buyer=buyer, project=project, topic=topic) for n, (topic, amount, buyer, project) in enumerate(spec)]
    shuffled = events[:]
    rng.shuffle(shuffled)
    net, raw = _net(BOTH, events)
    net_shuffled, _ = _net(BOTH, shuffled)
    for project, by_clause in net.items():
        totals = {clause: fen for clause, fen in by_clause.items() if fen}
        if project[1] is None:
            continue  # claims without a project are paid each on its own
        assert sum(totals.values()) == raw[project] and len(totals) <= 1, (project, totals)
        assert sum(net_shuffled[project].values()) == raw[project], (project, dict(net_shuffled[project]))


def _decisions_of_replay(policy, path: Path) -> list[tuple]:
    class Collect:
        def __init__(self):
            self.decisions: list = []

        def record(self, decisions, instructions, rejections, listings=()):
            self.decisions.extend(decisions)

    ledger = Collect()
    replay(path, policy, ledger)  # type: ignore[arg-type]
    return sorted((d.decision_id, d.outcome, d.granted, d.declined_by, d.reason) for d in ledger.decisions)


@settings(max_examples=15, deadline=None)
@given(st.lists(EVENT, min_size=2, max_size=10), st.randoms(use_true_random=False))
def test_a_replay_of_the_events_in_any_line_order_makes_the_same_decisions(tmp_path_factory, spec, rng):
    """At the replay level, "every arrival order" is every order of the file's lines: the engine
    decides in event-time order (order_key), so even under binding caps and between equal
    amounts the decisions are the same, to the id and the reason."""
    start = dt.datetime(2026, 3, 2, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    # a tight buyer cap, so that caps bind in some examples
    tight = parse_policy(DEFAULT_POLICY_PATH.read_bytes().replace(b'value: "5000000.00"', b'value: "1500.00"'), "tight.yaml")
    policy = combine([tight, DISTRICT])
    lines = [json.dumps({"topic": topic, "value": json.loads(raw)}, ensure_ascii=False)
             for n, (topic, amount, buyer, project) in enumerate(spec)
             for topic, raw in [purchase(f"e{n}", amount, buyer=buyer, project=project, topic=topic, at=start + dt.timedelta(minutes=rng.randint(0, 3)))]]
    folder = tmp_path_factory.mktemp("orders")
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    random.Random(rng.random()).shuffle(lines)
    (folder / "b.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _decisions_of_replay(policy, folder / "a.jsonl") == _decisions_of_replay(policy, folder / "b.jsonl")


def test_explain_reproduces_a_supersession_a_decline_as_funded_elsewhere_and_the_combined_cap():
    state: dict = {}
    engine = Engine(BOTH, state)
    outcomes = [engine.decide(claim) for topic, raw in (purchase("p1", "1000.00", project="X"), purchase("p2", "2000.00", project="X"))
                for claim in intake(topic, raw, BOTH)]
    decisions = [d.to_wire() for o in outcomes for d in o.decisions]
    assert [(d["clause_id"], d["outcome"], d["declined_by"]) for d in decisions] == [
        ("compute-voucher", "granted", None), ("hitech-compute-voucher", "declined", "funded-elsewhere"),
        ("compute-voucher", "clawed-back", None), ("compute-voucher", "granted", None), ("hitech-compute-voucher", "declined", "funded-elsewhere")]
    for decision in decisions:
        original = decisions[0] if decision["outcome"] == "clawed-back" else None
        explanation = explain(BOTH, decision=decision, original=original)
        assert not explanation.differences, (decision["outcome"], explanation.differences)
