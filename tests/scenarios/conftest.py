"""Collects the scenario files of this folder as tests, in the manner of openfisca-core's YAML
tests: each case of a ``*.yaml`` file here is one pytest item, ``<file>.yaml::<case name>``, so
``pytest tests/scenarios -k "compute-voucher and cap"`` selects cases and a failure names its file
and case. The format is in README.md beside this file; a key it does not know fails the file's
collection with one line naming the file, the case, where the key is and the keys allowed.

Every expected figure in those files is computed by hand from the policy text
(/work/shared/policy/chengdu-ai-2025.md), not copied from the code's output.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from parties import enterprise, person, team
from rules.engine import Engine
from rules.event_time import order_key
from rules.exclusions import Exclusions, listing_from
from rules.intake import Rejected, intake
from rules.money import format_fen, parse_amount
from rules.policy import load_policy
from schemas.inputs import EXCLUSIONS_TOPIC, MODEL_BY_TOPIC, PayeeExclusion
from schemas.outputs import Decision, DisbursementInstruction

HERE = Path(__file__).resolve().parent
POLICY = load_policy()
POLICY_DIR = HERE.parent.parent / "policy"

FILE_KEYS = ("scenarios",)
CASE_KEYS = ("name", "topic", "defaults", "events", "totals", "policies")
EVENT_KEYS = ("topic", "expect", "received_at")  # besides the message fields of the event's topic
EXPECT_KEYS = ("outcome", "granted", "declined", "declined_by", "fiscal_year", "payee", "beneficiary", "clause", "duplicate", "corrects", "instructions", "reject",
               "held_by", "payable_from", "supersedes", "funded_by")
# the claims topics, and the listings that hold payments (contract v1.1)
SCENARIO_MODELS = {**MODEL_BY_TOPIC, EXCLUSIONS_TOPIC: PayeeExclusion}
DEFAULT_SOURCE = {
    "compute-purchases": "scc-billing",
    "model-invoices": "model-vendor-billing",
    "investment-closings": "investment-registry",
    "award-announcements": "gov-review-system",
    EXCLUSIONS_TOPIC: "chengdu-credit-platform",
}
_KIND = {"E": 0, "PRV": 1, "VND": 2}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".yaml" and file_path.parent == HERE:
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self):
        doc = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        problem = _unknown(doc, FILE_KEYS, "")
        if problem is None and not (isinstance(doc.get("scenarios"), list) and doc["scenarios"]):
            problem = "'scenarios' must be a list of at least one case"
        if problem:
            raise self.CollectError(f"{self.nodeid}: {problem}")
        names: set[str] = set()
        for n, case in enumerate(doc["scenarios"], 1):
            label = f"case {case['name']!r}" if isinstance(case, dict) and isinstance(case.get("name"), str) else f"case {n}"
            problem = _case_problem(case)
            if problem is None and case["name"] in names:
                problem = "another case of this file has the same name"
            if problem:
                raise self.CollectError(f"{self.nodeid}: {label}: {problem}")
            names.add(case["name"])
            yield ScenarioItem.from_parent(self, name=case["name"], case=case)


class ScenarioItem(pytest.Item):
    def __init__(self, *, case: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        run_case(self.case)

    def repr_failure(self, excinfo, style=None):
        # the assertion's message says which event and what differs; the traceback would only
        # point into run_case (--fulltrace shows it)
        if isinstance(excinfo.value, AssertionError) and not self.config.getoption("fulltrace"):
            return f"{self.path.name}: case {self.name!r}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}: {self.name}"


# --- the format -----------------------------------------------------------------------------


def _unknown(value: Any, allowed: tuple[str, ...] | list[str], where: str) -> str | None:
    if not isinstance(value, dict):
        return f"{where}must be a mapping of keys ({', '.join(allowed)}), not {type(value).__name__}"
    for key in value:
        if key not in allowed:
            return f"{where}unknown key {key!r}; allowed: {', '.join(allowed)}"
    return None


def _case_problem(case: Any) -> str | None:
    problem = _unknown(case, CASE_KEYS, "")
    if problem:
        return problem
    if not isinstance(case.get("name"), str) or not case["name"] or "::" in case["name"]:
        return "'name' must be a text (without '::')"
    if not isinstance(case.get("events"), list) or not case["events"]:
        return "'events' must be a list of at least one event"
    defaults = case.get("defaults", {})
    if not isinstance(defaults, dict):
        return "'defaults' must be a mapping of message fields"
    for n, raw in enumerate(case["events"], 1):
        where = f"event {n}" + (f" ({raw['event_id']})" if isinstance(raw, dict) and "event_id" in raw else "") + ": "
        if not isinstance(raw, dict):
            return f"{where}must be a mapping, not {type(raw).__name__}"
        event = {**defaults, **raw}
        topic = event.get("topic", case.get("topic"))
        if topic not in SCENARIO_MODELS:
            return f"{where}topic {topic!r} is not an input topic; one of: {', '.join(SCENARIO_MODELS)} (as 'topic' of the case or the event)"
        allowed = sorted(f.alias or name for name, f in SCENARIO_MODELS[topic].model_fields.items()) + list(EVENT_KEYS)
        problem = _unknown(event, allowed, where if set(event) - set(allowed) <= set(raw) else f"{where}defaults: ")
        if problem:
            return problem
        for expect in _per_claim(event.get("expect")):
            problem = _unknown(expect, EXPECT_KEYS, f"{where}expect: ")
            if problem:
                return problem
    policies = case.get("policies", [])
    if not isinstance(policies, list) or not all(isinstance(p, str) and (POLICY_DIR / p).is_file() for p in policies):
        return f"'policies' must list policy files of {POLICY_DIR.name}/ run together"
    totals = case.get("totals", {})
    if not isinstance(totals, dict) or not all(isinstance(years, dict) for years in totals.values()):
        return "'totals' must map clause ids to {fiscal year: amount}"
    return None


# --- running a case ---------------------------------------------------------------------------


def party(alias: str | dict) -> tuple[dict, str]:
    """Alias -> (contract object, identifier): E<n>, PRV<n>, VND<n> an enterprise (registered in
    Chengdu, 510100, or in the division after an @: E3@110000), P<n> a person, anything else a team."""
    if isinstance(alias, dict):
        return alias, alias.get("uscc") or alias.get("person_id") or alias.get("team_ref")
    match = re.fullmatch(r"(E|PRV|VND)(\d+)(?:@(\d{6}))?", alias)
    if match:
        company = enterprise(int(match.group(2)), _KIND[match.group(1)], name=f"企业{alias}", division=match.group(3) or "510100")
        return company, company["uscc"]
    match = re.fullmatch(r"P(\d+)", alias)
    if match:
        someone = person(int(match.group(1)), name=f"个人{alias}")
        return someone, someone["person_id"]
    return team(alias), alias


FIRST_EVENT_AT = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def expand(topic: str, fields: dict, n: int) -> dict:
    """The message of a compact event, the ``n``th of its case (or a repeat of it): aliases expanded, the fields the
    case does not care about defaulted. Events that give no time happen a second apart, in file
    order, so that file order is the order they are decided in (by occurred_at)."""
    msg = dict(fields)
    event_id = msg["event_id"]
    msg.setdefault("source", DEFAULT_SOURCE[topic])
    msg.setdefault("occurred_at", (FIRST_EVENT_AT + dt.timedelta(seconds=n - 1)).isoformat())
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
    elif topic == EXCLUSIONS_TOPIC:
        msg.setdefault("list", "dishonest-judgment-debtor")
        msg.setdefault("reference", f"（2026）川01执{event_id}号")
    else:
        msg.setdefault("approval_ref", f"成经信〔2026〕{event_id}号")
    return msg


def _per_claim(expect: Any) -> list[Any]:
    """An event's expectations, one per claim it makes: a list when it makes several (one per
    programme's clause, in the order of ``policies``), else one mapping."""
    return expect if isinstance(expect, list) else [expect or {}]


def _policy(scenario: dict):
    files = scenario.get("policies")
    return load_policy(os.pathsep.join(str(POLICY_DIR / name) for name in files)) if files else POLICY


def _money(value) -> str:
    return format_fen(parse_amount(value if isinstance(value, (str, int)) else str(value)))


def _learn_listing(exclusions: Exclusions, data: bytes, expect: dict, where: str) -> None:
    try:
        exclusions.add(listing_from(data, POLICY))
    except Rejected as rejection:
        assert expect.get("reject") == rejection.code, f"{where}: rejected: {rejection.code}: {rejection.reason}"
        return
    assert not set(expect) - {"reject"}, f"{where}: a listing expects only 'reject'"
    assert "reject" not in expect, f"{where}: expected rejection {expect['reject']}, got a listing"


def _check_hold(exclusions: Exclusions, claim, payments: list[dict], expect: dict, where: str) -> None:
    """A new payment is held by the listing ``held_by`` names (its reference) or by none, and payable
    from ``payable_from`` (a date, null while a listing has no end), by the listings known so far."""
    day = dt.date.fromisoformat(claim.day)
    if "held_by" in expect or "payable_from" in expect:
        assert payments, f"{where}: a hold is expected, but no payment was made"
    for payment in payments:
        parties = [payment["payee"]["id"], payment["beneficiary"]["id"]]
        listing = exclusions.hold(parties, day)
        held_by = None if listing is None else listing.reference
        assert held_by == expect.get("held_by"), f"{where}: held by {held_by!r}, expected {expect.get('held_by')!r}"
        if "payable_from" in expect:
            payable = exclusions.payable_from(parties, day)
            wanted = expect["payable_from"]
            assert payable == (None if wanted is None else dt.date.fromisoformat(str(wanted))), f"{where}: payable from {payable}, expected {wanted}"


def run_case(scenario: dict) -> None:
    state: dict = {}
    policy = _policy(scenario)
    engine = Engine(policy, state)
    exclusions = Exclusions()
    emitted: dict[str, dict] = {}
    first_decision: dict[tuple[str, str, str], dict] = {}
    payment_of: dict[tuple[str, str, str], str] = {}  # (source, event_id, clause) -> payment instruction id
    default_topic = scenario.get("topic")
    accepted = []  # (claim, message, expectations, where) of the events intake accepts
    first_of: dict[tuple[str, str], int] = {}

    def named(event_and_clause: list[str]) -> tuple[str, str, str]:
        """``[event_id, clause]`` of an expectation (supersedes, funded_by) -> the key of that claim."""
        event_id, clause_id = event_and_clause
        return next(k for k in first_decision if k[1:] == (event_id, clause_id))
    for n, raw_event in enumerate(scenario["events"], 1):
        event = {**scenario.get("defaults", {}), **raw_event}
        topic = event.pop("topic", default_topic)
        expects = _per_claim(event.pop("expect", None))
        received_at = event.pop("received_at", None)  # the broker's time of the message; none in a replay
        # a repeat of an event (same source and event_id) repeats its time too
        nth = first_of.setdefault((event.get("source", DEFAULT_SOURCE[topic]), event["event_id"]), n)
        msg = expand(topic, event, nth)
        where = f"event {n} ({msg['event_id']})"
        data = json.dumps(msg, ensure_ascii=False).encode("utf-8")
        if topic == EXCLUSIONS_TOPIC:
            _learn_listing(exclusions, data, expects[0], where)
            continue
        try:
            claims = intake(topic, data, policy, None if received_at is None else dt.datetime.fromisoformat(received_at))
        except Rejected as rejection:
            assert expects[0].get("reject") == rejection.code, f"{where}: rejected by intake: {rejection.code}: {rejection.reason}"
            continue
        assert len(claims) == len(expects), f"{where}: {len(claims)} claims ({', '.join(c.clause_id for c in claims)}), {len(expects)} expectations"
        # the listings as they stood when the claim arrived: a later message may lift one
        for claim, expect in zip(claims, expects):
            accepted.append((claim, msg, expect, where + (f" {claim.clause_id}" if len(claims) > 1 else ""), copy.deepcopy(exclusions)))
    # decided as the pipeline and a replay decide them: by occurred_at, source, event_id
    accepted.sort(key=lambda entry: order_key(entry[0]))
    for claim, msg, expect, where, listings in accepted:
        out = engine.decide(claim)
        if out.rejection:
            assert expect.get("reject") == out.rejection[0], f"{where}: rejected by engine: {out.rejection}"
            assert not out.decisions and not out.instructions
            continue
        assert "reject" not in expect, f"{where}: expected rejection {expect['reject']}, got {out.decisions}"
        # a repeat of a clawback re-emits the payment it corrects first (rules/engine.py _repeat)
        assert len(out.decisions) == 1 + bool(expect.get("supersedes")) or out.duplicate, where
        decision = out.decisions[-1].to_wire()
        instructions = [i.to_wire() for i in out.instructions]
        # the records hold to the wire contract, and read back from it unchanged
        for record in out.decisions:
            Decision.model_validate(record.to_wire())
        for record, wire in ((out.decisions[-1], decision), *zip(out.instructions, instructions)):
            assert type(record).from_wire(wire) == record, where
        key = (msg["source"], msg["event_id"], claim.clause_id)
        if "funded_by" in expect:
            assert decision["declined_by"] == "funded-elsewhere", f"{where}: declined_by {decision['declined_by']!r}"
            funding = first_decision[named(expect["funded_by"])]
            assert funding["decision_id"] in decision["reason"], f"{where}: the reason does not name the funding decision: {decision['reason']}"
        if expect.get("supersedes"):
            # the payment of the claim it supersedes is clawed back whole, each decision naming the other
            superseded = first_decision[named(expect["supersedes"])]
            clawback, clawback_instruction = out.decisions[0].to_wire(), instructions.pop(0)
            assert clawback["outcome"] == "clawed-back" and clawback["granted"] == "-" + superseded["granted"], f"{where}: {clawback}"
            assert clawback["clause_id"] == superseded["clause_id"] and clawback["corrects"] == superseded["event_id"], where
            assert decision["decision_id"] in clawback["reason"] and superseded["decision_id"] in decision["reason"], where
            assert clawback_instruction["corrects"] == payment_of[named(expect["supersedes"])] and clawback_instruction["amount"] == clawback["granted"], where
            DisbursementInstruction.model_validate(clawback_instruction)
            emitted[clawback_instruction["instruction_id"]] = clawback_instruction

        # idempotency: a repeat re-emits the identical decision and no new instruction
        assert out.duplicate == expect.get("duplicate", False), f"{where}: duplicate={out.duplicate}"
        if out.duplicate:
            assert decision == first_decision[key], where
        else:
            assert key not in first_decision, f"{where}: decided twice"
            first_decision[key] = decision
        new = [i for i in instructions if i["instruction_id"] not in emitted]
        for instruction in new:
            DisbursementInstruction.model_validate(instruction)

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
        _check_hold(listings, claim, [i for i in new if i["kind"] == "payment"], expect, where)
        if "corrects" in expect:
            assert decision["corrects"] == expect["corrects"], where
            if new:
                assert new[0]["kind"] == "clawback" and new[0]["corrects"] == payment_of[(msg["source"], expect["corrects"], claim.clause_id)], where

    if "totals" in scenario:
        totals: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for instruction in emitted.values():
            totals[instruction["clause_id"]][instruction["fiscal_year"]] += parse_amount(instruction["amount"])
        got_totals = {c: {y: format_fen(v) for y, v in years.items()} for c, years in totals.items()}
        want_totals = {c: {int(y): _money(v) for y, v in years.items()} for c, years in scenario["totals"].items()}
        assert got_totals == want_totals, "totals"

    # whatever the scenario, no running cap in state is above its limit
    for key, used in state.items():
        if key.startswith('["cap"'):
            assert used["amount"] >= 0 and used["count"] >= 0, key
