"""The policy file: the shipped one loads, a broken one is refused at the right line, and
clauses and dated values are data (a new clause or a new rate needs no code change)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from parties import uscc
from rules.engine import Engine
from rules.intake import Rejected, intake
from rules.money import Rate
from rules.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy

SHIPPED = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
EXPECTED_CLAUSES = {
    "compute-voucher",
    "green-datacenter",
    "model-usage",
    "benchmark-scenario",
    "wu-wenjun-award",
    "theory-breakthrough",
    "investment",
    "exhibition",
    "hit-product",
    "ranking",
    "typical-case",
}
E1 = uscc(1)  # registered in Chengdu: the policy pays no other enterprise
E2 = uscc(2, kind=1)
VALUE_130 = 'value: "1.30"'
VALUE_010 = 'value: "0.10"'
EMPTY_REF = 'reference: ""'


def line_of(text: str, fragment: str, nth: int = 0) -> int:
    """1-based number of the nth line containing ``fragment``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if fragment in line]
    assert len(hits) > nth, f"{fragment!r} not in the policy text"
    return hits[nth]


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


def refused(text: str) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(text.encode("utf-8"), "policy.yaml")
    return str(info.value)


def all_dated(policy):
    for clause in policy.clauses.values():
        yield clause.paid_party
        ent = clause.entitlement
        for dated in (ent.rate, ent.amount, ent.other_grades, *ent.grades.values()):
            if dated is not None:
                yield dated
        for cap in clause.caps:
            for dated in (cap.amount, cap.count):
                if dated is not None:
                    yield dated


# --- the shipped file -------------------------------------------------------------------


def test_shipped_policy_loads_with_eleven_clauses():
    policy = load_policy()
    assert set(policy.clauses) == EXPECTED_CLAUSES
    assert policy.policy_id == "chengdu-ai-2025"
    assert policy.timezone == "Asia/Shanghai"
    assert len(policy.digest) == 64


def test_every_clause_has_text_and_every_dated_value_a_basis_and_reference():
    policy = load_policy()
    for clause in policy.clauses.values():
        assert clause.text.strip() and clause.title.strip(), clause.id
        assert clause.caps, f"{clause.id} has no cap"
    count = 0
    for dated in all_dated(policy):
        assert dated.values, dated.name
        for value in dated.values:
            count += 1
            assert value.basis in ("stated", "assumed"), dated.name
            assert value.reference.strip(), dated.name
    assert count >= 11 * 3


def test_shipped_figures_match_the_policy_doc():
    policy = load_policy()
    day = dt.date(2026, 1, 1)
    c = policy.clauses
    assert c["compute-voucher"].entitlement.rate.at(day) == Rate(60, 100)
    caps = {cap.id: cap for cap in c["compute-voucher"].caps}
    assert caps["buyer-year"].amount.at(day) == 500_000_000
    assert caps["programme-year"].amount.at(day) == 10_000_000_000
    assert c["compute-voucher"].paid_party.at(day) == "provider"
    assert c["model-usage"].entitlement.rate.at(day) == Rate(30, 100)
    assert c["wu-wenjun-award"].entitlement.grades["特等奖"].at(day) == 50_000_000
    assert c["wu-wenjun-award"].entitlement.other_grades.at(day) == 20_000_000
    assert c["wu-wenjun-award"].payee_kinds == {"person", "team"}
    assert c["typical-case"].entitlement.amount.at(day) == 50_000_000
    assert {cap.id: cap.count.at(day) for cap in c["benchmark-scenario"].caps if cap.count} == {"scenarios-year": 20}
    # the figures the doc marks A are marked assumed
    assert c["investment"].entitlement.rate.values[0].basis == "assumed"
    assert c["exhibition"].entitlement.rate.values[0].basis == "assumed"
    assert c["compute-voucher"].entitlement.rate.values[0].basis == "stated"


# --- a malformed file is refused with file:LINE: -------------------------------------------


def test_float_rate_refused_at_its_line():
    text = replace_once(SHIPPED, 'value: "0.60"', "value: 0.60")
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, 'value: 0.60')}:"), message
    assert "quoted decimal" in message


def test_unquoted_money_refused_at_its_line():
    text = replace_once(SHIPPED, 'value: "5000000.00"', "value: 5000000.00")
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, 'value: 5000000.00')}:"), message
    assert "quoted decimal string" in message


def test_rate_above_one_refused_at_its_line():
    text = replace_once(SHIPPED, 'value: "0.30"', 'value: "1.30"')
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, VALUE_130)}:"), message
    assert "above 1" in message


def test_cap_without_limit_refused_at_the_cap():
    start = line_of(SHIPPED, "- id: buyer-year")
    lines = SHIPPED.splitlines(keepends=True)
    # the buyer-year cap is `- id`, `per`, `period`, `amount:`, one dated value: drop the last two
    assert lines[start + 2].strip() == "amount:"
    text = "".join(lines[: start + 2] + lines[start + 4 :])
    message = refused(text)
    assert message.startswith(f"policy.yaml:{start}:"), message
    assert "exactly one of `amount`" in message and "buyer-year" in message


def test_cap_with_both_amount_and_count_refused():
    start = line_of(SHIPPED, "- id: once-per-case")
    text = replace_once(
        SHIPPED,
        "      - id: once-per-case\n        per: [subject]\n",
        '      - id: once-per-case\n        per: [subject]\n        amount:\n          - {from: 2025-08-28, value: "1.00", basis: assumed, reference: x}\n',
    )
    message = refused(text)
    assert message.startswith(f"policy.yaml:{start}:"), message


@pytest.mark.parametrize("bad", ["2025-13-01", "2025-02-30"])
def test_impossible_date_refused_at_its_line(bad):
    text = replace_once(SHIPPED, '{from: 2025-08-28, value: "0.60"', f'{{from: {bad}, value: "0.60"')
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, bad)}:"), message
    assert "date" in message


@pytest.mark.parametrize("bad", ["28/08/2025", "2025-08-28T00:00:00", '"2025-08-28"'])
def test_date_that_is_not_a_plain_date_refused_at_its_line(bad):
    text = replace_once(SHIPPED, '{from: 2025-08-28, value: "0.60"', f'{{from: {bad}, value: "0.60"')
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, bad)}:"), message
    assert "`from` must be a date" in message


def test_unknown_period_refused_at_its_line():
    old = "        per: [beneficiary]\n        period: fiscal-year\n"
    text = replace_once(SHIPPED, old, "        per: [beneficiary]\n        period: quarter\n")
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, 'period: quarter')}:"), message
    assert "quarter" in message and "fiscal-year" in message


def test_dates_out_of_order_refused_at_the_list():
    old = '      rate:\n        - {from: 2025-08-28, value: "0.60", basis: stated, reference: "最高可抵扣不超过60%的算力购买费用"}\n'
    new = (
        '      rate:\n'
        '        - {from: 2026-01-01, value: "0.50", basis: assumed, reference: "later"}\n'
        '        - {from: 2025-08-28, value: "0.60", basis: stated, reference: "最高可抵扣不超过60%的算力购买费用"}\n'
    )
    text = replace_once(SHIPPED, old, new)
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, '      rate:')}:"), message
    assert "increasing `from` order" in message


def test_same_date_twice_refused():
    old = '        - {from: 2025-08-28, value: "0.30", basis: stated, reference: "按不超过年度模型使用费用的30%"}\n'
    text = replace_once(SHIPPED, old, old + old.replace('"0.30"', '"0.20"'))
    assert "each date once" in refused(text)


def test_missing_basis_and_unknown_basis_refused_at_the_entry():
    text = replace_once(SHIPPED, '{from: 2025-08-28, value: "0.10", basis: assumed, ', '{from: 2025-08-28, value: "0.10", ')
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, VALUE_010)}:"), message
    assert "missing `basis`" in message
    text = replace_once(SHIPPED, 'value: "0.10", basis: assumed', 'value: "0.10", basis: guessed')
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, 'basis: guessed')}:"), message


def test_empty_reference_refused():
    text = replace_once(SHIPPED, 'reference: "通行做法：按展位费的50%"', 'reference: ""')
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, EMPTY_REF)}:"), message
    assert "reference" in message


def test_unknown_trigger_topic_and_duplicate_award_refused():
    text = replace_once(SHIPPED, "trigger: {topic: investment-closings}", "trigger: {topic: investment-closing}")
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, 'investment-closing}')}:"), message
    text = replace_once(SHIPPED, "award: hit-product}", "award: ranking}")
    assert "same award" in refused(text)


def test_yaml_syntax_error_has_a_line():
    text = replace_once(SHIPPED, "    title: 投资奖励\n", "    title: [投资奖励\n")
    message = refused(text)
    assert message.startswith("policy.yaml:") and ":0:" not in message.split(" ")[0]


def test_unreadable_file(tmp_path):
    with pytest.raises(PolicyError, match=":0: cannot read"):
        load_policy(tmp_path / "missing.yaml")


# --- clauses and values are data -----------------------------------------------------------


def block_of(text: str, clause_id: str) -> str:
    """The YAML block of one clause in the shipped file (from its key to the next blank line)."""
    start = text.index(f"\n  {clause_id}:\n") + 1
    end = text.index("\n\n", start)
    return text[start : end + 1]


def announcement(award: str, subject: str, event_id: str, uscc: str = E1, when: str = "2026-03-01T10:00:00+08:00") -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "source": "gov-review-system",
            "occurred_at": when,
            "beneficiary": {"uscc": uscc, "name": "成都某某科技有限公司"},
            "award": award,
            "approval_ref": f"成经信〔2026〕{event_id}号",
            "subject": subject,
        },
        ensure_ascii=False,
    ).encode()


def test_new_clause_added_as_data_works_end_to_end(tmp_path):
    block = block_of(SHIPPED, "typical-case")
    new = block.replace("typical-case", "provincial-case").replace('"500000.00"', '"300000.00"')
    assert "award: provincial-case" in new
    text = SHIPPED.replace(block, block + "\n" + new)
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")

    shipped = load_policy()
    with pytest.raises(Rejected) as info:
        intake("award-announcements", announcement("provincial-case", "case-1", "a1"), shipped)
    assert info.value.code == "unknown-award"

    policy = load_policy(path)
    assert len(policy.clauses) == 12 and "provincial-case" in policy.awards
    engine = Engine(policy, {})
    claims = intake("award-announcements", announcement("provincial-case", "case-1", "a1"), policy)
    assert [c.clause_id for c in claims] == ["provincial-case"]
    out = engine.decide(claims[0])
    assert out.decisions[0].outcome == "granted"
    assert [i.amount for i in out.instructions] == [300000_00]
    assert out.instructions[0].clause_id == "provincial-case"
    # its once-per-case cap is its own, separate from typical-case's
    again = engine.decide(intake("award-announcements", announcement("provincial-case", "case-1", "a2", E2), policy)[0])
    assert again.decisions[0].declined_by == "once-per-case"
    typical = engine.decide(intake("award-announcements", announcement("typical-case", "case-1", "a3"), policy)[0])
    assert typical.instructions[0].amount == 500000_00


def purchase(event_id: str, when: str, amount: str) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "source": "scc-billing",
            "occurred_at": when,
            "beneficiary": {"uscc": E1, "name": "需求方"},
            "provider": {"uscc": E2, "name": "算力服务商"},
            "invoice_no": f"INV-{event_id}",
            "amount": amount,
        }
    ).encode()


def test_a_rate_changed_from_a_later_date_applies_only_from_that_day():
    old = '        - {from: 2025-08-28, value: "0.60", basis: stated, reference: "最高可抵扣不超过60%的算力购买费用"}\n'
    new = old + '        - {from: 2026-07-01, value: "0.50", basis: assumed, reference: "test: rate lowered from 1 July 2026"}\n'
    policy = parse_policy(replace_once(SHIPPED, old, new).encode("utf-8"), "policy.yaml")
    engine = Engine(policy, {})

    def granted(event_id, when):
        out = engine.decide(intake("compute-purchases", purchase(event_id, when, "1000.00"), policy)[0])
        decision = out.decisions[0].to_wire()
        return decision["granted"], Decimal(decision["computation"]["rate"])

    assert granted("p1", "2026-06-30T23:59:59+08:00") == ("600.00", Decimal("0.6"))
    assert granted("p2", "2026-07-01T00:00:00+08:00") == ("500.00", Decimal("0.5"))
    # 15:59:59Z is still 30 June in Chengdu, 16:00:00Z is already 1 July
    assert granted("p3", "2026-06-30T15:59:59Z") == ("600.00", Decimal("0.6"))
    assert granted("p4", "2026-06-30T16:00:00Z") == ("500.00", Decimal("0.5"))
    assert granted("p5", "2027-03-01T10:00:00+08:00") == ("500.00", Decimal("0.5"))


def test_a_cap_changed_from_a_later_date_applies_only_from_that_day():
    old = '          - {from: 2025-08-28, value: "5000000.00", basis: stated, reference: "每家算力需求方每年累计可领取最高500万元算力券"}\n'
    new = old + '          - {from: 2027-01-01, value: "100.00", basis: assumed, reference: "test"}\n'
    policy = parse_policy(replace_once(SHIPPED, old, new).encode("utf-8"), "policy.yaml")
    engine = Engine(policy, {})
    a = engine.decide(intake("compute-purchases", purchase("p1", "2026-12-31T23:59:59+08:00", "1000.00"), policy)[0])
    b = engine.decide(intake("compute-purchases", purchase("p2", "2027-01-01T00:00:00+08:00", "1000.00"), policy)[0])
    assert a.decisions[0].granted == 600_00
    assert (b.decisions[0].granted, b.decisions[0].declined_by) == (100_00, "buyer-year")


def test_allowed_lateness_per_clause_is_dated_assumed_and_read_as_a_timedelta():
    clauses = load_policy().clauses
    for clause in clauses.values():
        for value in clause.allowed_lateness.values:
            assert value.value >= dt.timedelta(0) and value.basis == "assumed" and value.reference, clause.id
    assert clauses["compute-voucher"].allowed_lateness.at(dt.date(2026, 3, 1)) == dt.timedelta(days=2)
    assert clauses["benchmark-scenario"].allowed_lateness.at(dt.date(2026, 3, 1)) == dt.timedelta(0)


@pytest.mark.parametrize("bad", ["-P1D", "P1.5D", "2 days", "P", "PT"])
def test_a_negative_or_malformed_allowed_lateness_is_refused_at_its_line(bad):
    text = replace_once(SHIPPED, "value: P7D,", f"value: {bad},")
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, f'value: {bad},')}:"), message
    assert "allowed_lateness" in message and "not negative" in message


def test_a_clause_without_allowed_lateness_is_refused():
    block = block_of(SHIPPED, "investment")
    entry = next(line for line in block.splitlines(keepends=True) if "value: P7D" in line)
    text = replace_once(SHIPPED, "    allowed_lateness:\n" + entry, "")
    assert "clause investment is missing `allowed_lateness`" in refused(text)


# --- programme windows and who may be paid (issue 25) ----------------------------------------


def test_shipped_windows_skew_and_eligibility_are_assumed_with_references():
    policy = load_policy()
    for clause in policy.clauses.values():
        assert clause.starts == dt.date(2025, 8, 28), clause.id
        assert clause.ends is not None and clause.ends.at(clause.starts) == dt.date(2028, 8, 27), clause.id
        assert [(v.basis, bool(v.reference.strip())) for v in clause.ends.values] == [("assumed", True)], clause.id
    assert policy.clock_skew is not None and policy.clock_skew.at(dt.date(2026, 1, 1)) == dt.timedelta(minutes=10)
    assert policy.clock_skew.values[0].basis == "assumed"
    assert policy.registration_divisions is not None and policy.registration_divisions.at(dt.date(2026, 1, 1)) == ("5101",)
    assert "成都市" in policy.registration_divisions.values[0].reference


def test_a_clause_starts_on_its_earliest_dated_value():
    text = replace_once(SHIPPED, '{from: 2025-08-28, value: "0.60"', '{from: 2025-09-01, value: "0.60"')
    text = replace_once(text, "- {from: 2025-08-28, value: provider", "- {from: 2025-08-30, value: provider")
    assert parse_policy(text.encode()).clauses["compute-voucher"].starts == dt.date(2025, 8, 28)  # its caps


def test_an_end_before_the_clause_starts_is_refused_at_its_line():
    text = replace_once(SHIPPED, "value: 2028-08-27", "value: 2025-08-27")
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, '    ends:')}:"), message
    assert "2025-08-27 is before the clause's first day 2025-08-28" in message


def test_an_end_that_is_not_a_date_is_refused_at_its_line():
    text = replace_once(SHIPPED, "value: 2028-08-27", 'value: "in three years"')
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, 'in three years')}:"), message
    assert "must be a date" in message


@pytest.mark.parametrize("bad", ['"10"', '"10 minutes"', '"-PT1M"', "600"])
def test_a_clock_skew_that_is_not_a_duration_is_refused_at_its_line(bad):
    text = replace_once(SHIPPED, "value: PT10M", f"value: {bad}")
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, f'value: {bad}')}:"), message
    assert "ISO 8601" in message


@pytest.mark.parametrize("bad", ['"5101"', "[5101]", '["51A1"]', "[]"])
def test_a_division_prefix_list_that_is_not_quoted_digits_is_refused_at_its_line(bad):
    text = replace_once(SHIPPED, 'value: ["5101"]', f"value: {bad}")
    message = refused(text)
    assert message.startswith(f"policy.yaml:{line_of(text, f'value: {bad}')}:"), message
    assert "division-code prefixes" in message


def test_windows_skew_and_eligibility_are_optional():
    text = SHIPPED
    for block in ("clock_skew:\n", "eligibility:\n  registration_division_prefix:\n"):
        start = text.index(block)
        text = text[:start] + text[text.index("\n\n", start):]
    text = "\n".join(line for line in text.splitlines() if not line.startswith(("    ends:", "      - {from: 2025-08-28, value: 2028")))
    policy = parse_policy(text.encode())
    assert policy.clock_skew is None and policy.registration_divisions is None
    assert all(clause.ends is None for clause in policy.clauses.values())
    claims = intake("compute-purchases", purchase("p2099", "2099-03-01T10:00:00+08:00", "100.00"), policy)
    assert Engine(policy, {}).decide(claims[0]).decisions[0].granted == 60_00
