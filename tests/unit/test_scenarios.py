"""Table-driven scenarios (OpenFisca style) from tests/scenarios/*.yaml.

Every expected figure in those files is computed by hand from the policy text
(/work/shared/policy/chengdu-ai-2025.md), not copied from the code's output.

File format::

    scenarios:
      - name: ...
        topic: compute-purchases          # default topic of the events
        defaults: {occurred_at: "..."}     # default message fields
        events:
          - {event_id: p1, beneficiary: E1, amount: "0.02", expect: {outcome: granted, granted: "0.01"}}
        totals: {compute-voucher: {2026: "0.01"}}   # Σ instruction amounts per clause and fiscal year

An event is the message itself, compact: a party given as an alias is expanded to a valid
identifier (``E<n>``/``PRV<n>``/``VND<n>``: enterprise USCC; ``P<n>``: resident ID; anything
else: a team_ref); fields the scenario does not care about get defaults. ``topic`` and
``expect`` are not message fields. ``expect`` keys: outcome, granted, declined, declined_by,
fiscal_year, payee, beneficiary, clause, duplicate, corrects (the event_id whose payment
instruction this clawback corrects), instructions (amounts of the NEW instructions; by
default [granted] when granted is not 0.00 and the event is not a duplicate, else []),
reject (a rejection code, from intake or engine).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from parties import enterprise, person, team
from rules.engine import Engine
from rules.intake import Rejected, intake
from rules.money import format_fen, parse_amount
from rules.policy import load_policy

POLICY = load_policy()
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"

_KIND = {"E": 0, "PRV": 1, "VND": 2}
DEFAULT_SOURCE = {
    "compute-purchases": "scc-billing",
    "model-invoices": "model-vendor-billing",
    "investment-closings": "investment-registry",
    "award-announcements": "gov-review-system",
}


def party(alias):
    """Alias -> (contract object, identifier)."""
    if isinstance(alias, dict):
        return alias, alias.get("uscc") or alias.get("person_id") or alias.get("team_ref")
    match = re.fullmatch(r"(E|PRV|VND|P)(\d+)", alias)
    if match and match.group(1) in _KIND:
        company = enterprise(int(match.group(2)), _KIND[match.group(1)], name=f"企业{alias}")
        return company, company["uscc"]
    if match:
        someone = person(int(match.group(2)), name=f"个人{alias}")
        return someone, someone["person_id"]
    return team(alias), alias


def expand(topic: str, fields: dict) -> dict:
    msg = dict(fields)
    event_id = msg["event_id"]
    msg.setdefault("source", DEFAULT_SOURCE[topic])
    msg.setdefault("occurred_at", "2026-03-01T10:00:00+08:00")
    msg["beneficiary"] = party(msg.get("beneficiary", "E1"))[0]
    if topic == "compute-purchases":
        msg["provider"] = party(msg.get("provider", "PRV1"))[0]
        msg.setdefault("invoice_no", f"INV-{event_id}")
    elif topic == "model-invoices":
        msg["vendor"] = party(msg.get("vendor", "VND1"))[0]
        msg.setdefault("invoice_no", f"MI-{event_id}")
        msg.setdefault("billing_period", msg["occurred_at"][:7])
    elif topic == "investment-closings":
        msg.setdefault("round", "vc")
        msg.setdefault("investors", ["某创投基金"])
        msg.setdefault("agreement_no", f"AG-{event_id}")
    else:
        msg.setdefault("approval_ref", f"成经信〔2026〕{event_id}号")
    return msg


def load_scenarios():
    files = sorted(SCENARIO_DIR.glob("*.yaml"))
    assert files, f"no scenario files in {SCENARIO_DIR}"
    cases = []
    for path in files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for scenario in doc["scenarios"]:
            cases.append(pytest.param(scenario, id=f"{path.stem}: {scenario['name']}"))
    return cases


def _money(value) -> str:
    return format_fen(parse_amount(value if isinstance(value, (str, int)) else str(value)))


@pytest.mark.parametrize("scenario", load_scenarios())
def test_scenario(scenario):
    state: dict = {}
    engine = Engine(POLICY, state)
    emitted: dict[str, dict] = {}
    first_decision: dict[tuple[str, str], dict] = {}
    payment_of: dict[tuple[str, str], str] = {}  # (source, event_id) -> payment instruction id
    default_topic = scenario.get("topic")
    for n, raw_event in enumerate(scenario["events"], 1):
        event = {**scenario.get("defaults", {}), **raw_event}
        topic = event.pop("topic", default_topic)
        expect = event.pop("expect", {}) or {}
        msg = expand(topic, event)
        where = f"event {n} ({msg['event_id']})"
        data = json.dumps(msg, ensure_ascii=False).encode("utf-8")
        try:
            claims = intake(topic, data, POLICY)
        except Rejected as rejection:
            assert expect.get("reject") == rejection.code, f"{where}: rejected by intake: {rejection.code}: {rejection.reason}"
            continue
        assert len(claims) == 1, where
        out = engine.decide(claims[0])
        if out.rejection:
            assert expect.get("reject") == out.rejection[0], f"{where}: rejected by engine: {out.rejection}"
            assert not out.decisions and not out.instructions
            continue
        assert "reject" not in expect, f"{where}: expected rejection {expect['reject']}, got {out.decisions}"
        assert len(out.decisions) == 1, where
        decision = out.decisions[0]
        key = (msg["source"], msg["event_id"])

        # idempotency: a repeat re-emits the identical decision and no new instruction
        assert out.duplicate == expect.get("duplicate", False), f"{where}: duplicate={out.duplicate}"
        if out.duplicate:
            assert decision == first_decision[key], where
        else:
            assert key not in first_decision, f"{where}: decided twice"
            first_decision[key] = decision
        new = [i for i in out.instructions if i["instruction_id"] not in emitted]

        got = {
            "outcome": decision["outcome"],
            "granted": decision["granted"],
            "declined": decision["declined"],
            "declined_by": decision["declined_by"],
            "fiscal_year": decision["fiscal_year"],
            "clause": decision["clause_id"],
            "payee": decision["payee"]["id"],
            "beneficiary": decision["beneficiary"]["id"],
        }
        for field in ("outcome", "declined_by", "fiscal_year", "clause"):
            if field in expect:
                assert got[field] == expect[field], f"{where}: {field} is {got[field]!r}, expected {expect[field]!r}"
        for field in ("granted", "declined"):
            if field in expect:
                assert got[field] == _money(expect[field]), f"{where}: {field} is {got[field]}, expected {expect[field]}"
        for field in ("payee", "beneficiary"):
            if field in expect:
                assert got[field] == party(expect[field])[1], f"{where}: {field} is {got[field]}, expected {expect[field]}"

        if "instructions" in expect:
            wanted = [_money(a) for a in expect["instructions"]]
        else:
            wanted = [] if out.duplicate or decision["granted"] == "0.00" else [decision["granted"]]
        assert [i["amount"] for i in new] == wanted, f"{where}: new instructions {[i['amount'] for i in new]}, expected {wanted}"
        for instruction in new:
            assert instruction["instruction_id"] == decision["instruction_id"], where
            assert instruction["amount"] == decision["granted"], where
            assert instruction["payee"] == decision["payee"] and instruction["currency"] == "CNY", where
            assert instruction["fiscal_year"] == decision["fiscal_year"], where
            emitted[instruction["instruction_id"]] = instruction
            if instruction["kind"] == "payment":
                payment_of[key] = instruction["instruction_id"]
                assert msg["event_id"] in instruction["event_ids"]
        if not new and not out.duplicate:
            assert decision["instruction_id"] is None, where
        if "corrects" in expect:
            assert decision["corrects"] == expect["corrects"], where
            if new:
                assert new[0]["kind"] == "clawback" and new[0]["corrects"] == payment_of[(msg["source"], expect["corrects"])], where

    if "totals" in scenario:
        totals: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for instruction in emitted.values():
            totals[instruction["clause_id"]][instruction["fiscal_year"]] += parse_amount(instruction["amount"])
        got_totals = {c: {y: format_fen(v) for y, v in years.items()} for c, years in totals.items()}
        want_totals = {c: {int(y): _money(v) for y, v in years.items()} for c, years in scenario["totals"].items()}
        assert got_totals == want_totals

    # whatever the scenario, no running cap in state is above its limit
    for key, used in state.items():
        if key.startswith('["cap"'):
            assert used["amount"] >= 0 and used["count"] >= 0, key
