"""subsidy generate: reproducible, realistic, and it contains every case replay must handle."""

from __future__ import annotations

import collections
import datetime as dt
import json
import re

from rules.engine import Engine, instruction_id_of
from rules.event_time import EventTimeOrder
from rules.identifiers import resident_id_problem, uscc_problem
from rules.intake import Rejected, intake
from rules.policy import load_policy
from subsidy.cli import main
from subsidy.generate import INVALID_KINDS
from subsidy.replay import replay

from .conftest import EVENTS, YEAR


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, capsys):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert main(["generate", "--year", "2026", "--out", str(a), "--seed", "3", "--events", "800", "--enterprises", "60"]) == 0
    assert main(["generate", "--year", "2026", "--out", str(b), "--seed", "3", "--events", "800", "--enterprises", "60"]) == 0
    assert main(["generate", "--year", "2026", "--out", str(c), "--seed", "4", "--events", "800", "--enterprises", "60"]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert "wrote" in capsys.readouterr().out


def test_events_scale_the_year(small_year):
    path, _ = small_year
    lines = _lines(path)
    assert abs(len(lines) - EVENTS) <= EVENTS * 0.02


def test_mix_topics_awards_corrections_duplicates(small_year):
    path, events = small_year
    lines = _lines(path)
    topics = collections.Counter(line["topic"] for line in lines)
    assert set(topics) == {"compute-purchases", "model-invoices", "investment-closings", "award-announcements", "payment-voids"}
    assert topics["compute-purchases"] > topics["model-invoices"] > topics["investment-closings"] > 0

    values = [line["value"] for line in lines if "value" in line]
    awards = collections.Counter(v.get("award") for v in values if "award" in v)
    assert set(load_policy().awards) <= set(awards)  # every award clause of the policy
    assert awards["benchmark-scenario"] > 20  # beyond the 20-a-year count cap
    subjects = collections.Counter((v["award"], v["subject"]) for v in values if "award" in v)
    assert any(n > 1 for n in subjects.values()), "some subject must be announced twice"
    wu = [v["beneficiary"] for v in values if v.get("award") == "wu-wenjun-award"]
    assert any("person_id" in b for b in wu) and any("team_ref" in b for b in wu)
    for b in wu:
        if "person_id" in b:
            assert resident_id_problem(b["person_id"]) is None

    # refunds and credit notes name an earlier event of the same source
    seen: dict[tuple[str, str], int] = {}
    corrections = 0
    for i, v in enumerate(values):
        target = v.get("refund_of") or v.get("credit_of")
        if target:
            corrections += 1
            assert (v["source"], target) in seen and seen[(v["source"], target)] < i
        seen.setdefault((v["source"], v["event_id"]), i)
    assert corrections > 0
    assert any(v.get("refund_of") for v in values) and any(v.get("credit_of") for v in values)

    # exact duplicates (redeliveries)
    raw = collections.Counter(json.dumps(line, ensure_ascii=False, sort_keys=True) for line in lines)
    assert sum(n - 1 for n in raw.values()) >= 3
    assert sum(e.invalid is None for e in events) > 0


def test_every_invalid_kind_present_and_rejected_at_intake(small_year):
    path, events = small_year
    policy = load_policy()
    kinds = collections.Counter(e.invalid for e in events if e.invalid)
    assert set(kinds) == set(INVALID_KINDS)
    assert 0.003 * len(events) <= sum(kinds.values()) <= 0.01 * len(events)
    codes = collections.Counter()
    for line in _lines(path):
        raw = line["raw"].encode() if "raw" in line else json.dumps(line["value"], ensure_ascii=False).encode()
        try:
            intake(line["topic"], raw, policy)
        except Rejected as exc:
            codes[exc.code] += 1
    assert sum(codes.values()) == sum(kinds.values())
    assert {"invalid-field", "malformed-json", "unknown-award"} <= set(codes)


def test_identifiers_sources_and_times(small_year):
    path, events = small_year
    policy = load_policy()
    invalid_ids = {id(e.value) for e in events if e.invalid}
    stamps = []
    for e in events:
        if e.value is None:
            continue
        v = e.value
        assert v["source"] in policy.sources[e.topic]
        assert re.fullmatch(rf"{YEAR}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", v["occurred_at"])
        stamps.append(v["occurred_at"])
        if id(v) in invalid_ids:
            continue
        for party in (v.get("beneficiary"), v.get("provider"), v.get("vendor"), v.get("payee")):
            if party and "uscc" in party:
                assert uscc_problem(party["uscc"]) is None
                if party is v.get("beneficiary") and e.topic != "award-announcements":
                    assert party["uscc"][2:6] == "5101" and party["name"].startswith("成都") and party["name"].endswith("有限公司")
        if "amount" in v:
            assert isinstance(v["amount"], str) and re.fullmatch(r"-?\d+\.\d\d", v["amount"])
    assert stamps == sorted(stamps), "lines are in time order"


def test_voids_name_an_earlier_payment_that_the_replay_claws_back_whole(small_year):
    """About 0.5 % of purchases and invoices are voided some days later, each void naming the
    payment its purchase's claim is paid with: decide claws most back; a void of a declined claim
    is rejected (unknown-payment), as in production."""
    path, _ = small_year
    policy = load_policy()
    lines = _lines(path)
    claims = {}
    for i, line in enumerate(lines):
        value = line.get("value")
        if line["topic"] in ("compute-purchases", "model-invoices") and value is not None and "beneficiary" in value:
            try:
                for claim in intake(line["topic"], json.dumps(value, ensure_ascii=False).encode(), policy):
                    claims.setdefault((claim.clause_id, claim.source, claim.event_id), (i, claim))
            except Rejected:
                continue
    voids = [(i, line["value"]) for i, line in enumerate(lines) if line["topic"] == "payment-voids"]
    originals = sum(1 for line in lines if line["topic"] in ("compute-purchases", "model-invoices"))
    assert 0.003 * originals <= len(voids) <= 0.008 * originals
    for i, void in voids:
        payment = void["payment"]
        at, claim = claims[(payment["clause_id"], payment["source"], payment["event_id"])]
        assert at < i and claim.occurred_at < void["occurred_at"]
        assert payment["instruction_id"] == instruction_id_of(policy, claim.clause_id, claim.source, claim.event_id)
        assert void["event_id"] == f"void-{payment['instruction_id']}" and void["payee"]["uscc"] == claim.payee["id"]
        assert void["source"] in policy.sources["payment-voids"] and void["operator"] and void["reason"]
    rejected = collections.Counter()

    class Voided:
        clawbacks = 0

        def record(self, decisions, instructions, rejections, listings=()):
            self.clawbacks += sum(1 for i in instructions if i.computation.to_wire().get("void"))
            rejected.update(r["code"] for r in rejections if r["topic"] == "payment-voids")

    voided = Voided()
    replay(path, policy, voided)
    assert voided.clawbacks > 0 and voided.clawbacks + sum(rejected.values()) == len(voids)
    assert set(rejected) <= {"unknown-payment"}


def test_a_pipeline_fed_the_file_in_order_sees_no_late_claim(small_year):
    """Each claim of the file is at most its clause's allowed lateness behind the latest
    occurred_at before it, so an event-time order whose input has read the file up to the
    latest time so far (the most any watermark can say) never finds one late."""
    path, _ = small_year
    policy = load_policy()
    source = ("compute-purchases", 0)
    order = EventTimeOrder(policy, [source], {})
    latest = None
    offered = 0
    for line in _lines(path):
        if "value" not in line:
            continue
        try:
            claims = intake(line["topic"], json.dumps(line["value"], ensure_ascii=False).encode(), policy)
        except Rejected:
            continue
        for claim in claims:
            at = dt.datetime.fromisoformat(claim.occurred_at)
            if latest is not None:
                assert latest - at <= policy.clauses[claim.clause_id].allowed_lateness.at(dt.date.fromisoformat(claim.day)), claim
            assert order.offer(claim) is None, f"{claim.event_id} would be late"
            offered += 1
            latest = max(latest or at, at)
            order.progress(source, latest)
            order.release()
    assert offered > 1000


def test_a_year_outside_the_programme_window_is_refused_in_one_line(tmp_path, capsys):
    # 2025 starts before the policy took effect (2025-08-28), 2028 goes past its assumed end (2028-08-27)
    for year in ("2025", "2028"):
        assert main(["generate", "--year", year, "--out", str(tmp_path / "y.jsonl"), "--events", "300"]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and f"--year {year} has days outside the programme window of" in error


def test_every_paid_or_supported_enterprise_is_registered_in_chengdu_and_every_event_in_the_window(small_year):
    # issue 25: unless asked, generate makes claims to pay or to decline by a cap, never ones the
    # policy refuses for who or when (vendors are neither payee nor beneficiary: they may be elsewhere)
    path, _ = small_year
    policy = load_policy()
    engine = Engine(policy, {})
    codes, declined_by = collections.Counter(), collections.Counter()
    for line in _lines(path):
        raw = line["raw"].encode() if "raw" in line else json.dumps(line["value"], ensure_ascii=False).encode()
        try:
            claims = intake(line["topic"], raw, policy)
        except Rejected as exc:
            codes[exc.code] += 1
            continue
        for claim in claims:
            for decision in engine.decide(claim).decisions:
                declined_by[decision.declined_by] += 1
                for party in (decision.payee, decision.beneficiary):
                    assert party.kind != "enterprise" or party.id[2:6] == "5101", decision
    assert not {"outside-programme", "dated-in-future"} & set(codes)
    assert declined_by["not-eligible"] == 0 and declined_by["not-in-force"] == 0
