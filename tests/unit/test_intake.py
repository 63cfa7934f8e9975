"""Intake: every input rule of the wire contract, with a reason a person can act on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from rules.intake import Claim, Rejected, intake
from rules.policy import load_policy

POLICY = load_policy()
BUYER = "91110000600037341L"
PROVIDER = "91110108551385082Q"
PERSON = "11010519491231002X"  # check digit computed by hand in test_money_and_identifiers.py


def purchase(**overrides):
    msg = {
        "event_id": "p-1",
        "source": "scc-billing",
        "occurred_at": "2026-03-01T10:00:00+08:00",
        "beneficiary": {"uscc": BUYER, "name": "需求方"},
        "provider": {"uscc": PROVIDER, "name": "算力服务商"},
        "invoice_no": "INV-1",
        "amount": "1000.00",
    }
    msg.update(overrides)
    return msg


def invoice(**overrides):
    msg = {
        "event_id": "m-1",
        "source": "model-vendor-billing",
        "occurred_at": "2026-03-01T10:00:00+08:00",
        "beneficiary": {"uscc": BUYER, "name": "企业"},
        "vendor": {"uscc": PROVIDER, "name": "模型厂商"},
        "invoice_no": "MI-1",
        "amount": "1000.00",
        "billing_period": "2026-02",
    }
    msg.update(overrides)
    return msg


def closing(**overrides):
    msg = {
        "event_id": "i-1",
        "source": "investment-registry",
        "occurred_at": "2026-03-01T10:00:00+08:00",
        "beneficiary": {"uscc": BUYER, "name": "企业"},
        "round": "vc",
        "amount": "8000000.00",
        "investors": ["某创投基金"],
        "agreement_no": "AG-1",
    }
    msg.update(overrides)
    return msg


def award(**overrides):
    msg = {
        "event_id": "a-1",
        "source": "gov-review-system",
        "occurred_at": "2026-03-01T10:00:00+08:00",
        "beneficiary": {"uscc": BUYER, "name": "企业"},
        "award": "typical-case",
        "approval_ref": "成经信〔2026〕1号",
        "subject": "case-1",
    }
    msg.update(overrides)
    return msg


def raw(msg) -> bytes:
    return json.dumps(msg, ensure_ascii=False).encode("utf-8")


def rejected(topic: str, data: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        intake(topic, data, POLICY)
    assert info.value.reason.strip(), "a rejection must say why"
    return info.value


def one_claim(topic: str, msg) -> Claim:
    claims = intake(topic, raw(msg), POLICY)
    assert len(claims) == 1
    return claims[0]


# --- accepted -----------------------------------------------------------------------------


def test_valid_purchase_makes_one_compute_voucher_claim_paid_to_the_provider():
    claim = one_claim("compute-purchases", purchase())
    assert claim.clause_id == "compute-voucher"
    assert claim.base == 100000
    assert claim.beneficiary == {"id": BUYER, "kind": "enterprise", "name": "需求方"}
    assert claim.payee == {"id": PROVIDER, "kind": "enterprise", "name": "算力服务商"}
    assert claim.fiscal_year == 2026 and claim.day == "2026-03-01"
    assert claim.corrects is None
    assert Claim.from_dict(json.loads(json.dumps(claim.to_dict()))) == claim
    assert claim.to_dict() == {k: v for k, v in dataclasses.asdict(claim).items() if k != "voids"}  # a shallow asdict; voids only of a void


@pytest.mark.parametrize("topic, build, clause", [
    ("model-invoices", invoice, "model-usage"),
    ("investment-closings", closing, "investment"),
    ("award-announcements", award, "typical-case"),
])
def test_each_topic_makes_its_clause(topic, build, clause):
    claim = one_claim(topic, build())
    assert claim.clause_id == clause
    assert claim.payee == claim.beneficiary


def test_integer_amount_is_whole_yuan():
    assert one_claim("compute-purchases", purchase(amount=1000)).base == 100000


def test_same_content_gives_same_fingerprint_and_different_content_another():
    a = one_claim("compute-purchases", purchase())
    b = one_claim("compute-purchases", purchase(amount="1000"))  # same value, other spelling
    c = one_claim("compute-purchases", purchase(amount="1000.01"))
    assert a.fingerprint == b.fingerprint != c.fingerprint


# --- rejected: bytes and JSON ----------------------------------------------------------------


def test_not_utf8():
    r = rejected("compute-purchases", raw(purchase()).replace("需求方".encode(), "需求方".encode("gbk")))
    assert r.code == "not-utf8" and "UTF-8" in r.reason


@pytest.mark.parametrize("data", [b"", b"{", b"{'event_id': 'x'}", b"not json", b'{"a": 1} {"b": 2}'])
def test_not_json(data):
    r = rejected("compute-purchases", data)
    assert r.code == "malformed-json" and "not JSON" in r.reason


@pytest.mark.parametrize("data, kind", [(b"[]", "list"), (b'"x"', "str"), (b"1", "int"), (b"null", "NoneType")])
def test_not_an_object(data, kind):
    r = rejected("compute-purchases", data)
    assert r.code == "malformed-json" and "JSON object" in r.reason and kind in r.reason


def test_duplicate_key_top_level_and_nested():
    text = raw(purchase()).decode()
    twice = text.replace('"amount": "1000.00"', '"amount": "1.00", "amount": "1000.00"')
    r = rejected("compute-purchases", twice.encode())
    assert r.code == "malformed-json" and "'amount' appears twice" in r.reason
    nested = text.replace('"name": "需求方"', '"name": "需求方", "name": "别名"')
    assert "'name' appears twice" in rejected("compute-purchases", nested.encode()).reason


def test_unknown_topic():
    assert rejected("compute-purchase", raw(purchase())).code == "unknown-topic"


# --- rejected: fields -----------------------------------------------------------------------


def test_unknown_field_names_the_field():
    r = rejected("compute-purchases", raw(purchase(refund_off="p-0")))
    assert r.code == "invalid-field"
    assert "refund_off" in r.reason and "unknown field" in r.reason


def test_unknown_field_in_a_nested_object():
    msg = purchase()
    msg["beneficiary"] = {"uscc": BUYER, "name": "x", "phone": "123"}
    r = rejected("compute-purchases", raw(msg))
    assert "phone" in r.reason and "unknown field" in r.reason


@pytest.mark.parametrize("missing", ["event_id", "source", "occurred_at", "beneficiary", "provider", "invoice_no", "amount"])
def test_missing_field_names_the_field(missing):
    msg = purchase()
    del msg[missing]
    r = rejected("compute-purchases", raw(msg))
    assert r.code == "invalid-field"
    assert f"{missing}: required field is missing" in r.reason


@pytest.mark.parametrize("missing", ["billing_period", "vendor"])
def test_model_invoice_missing_field(missing):
    msg = invoice()
    del msg[missing]
    assert f"{missing}: required field is missing" in rejected("model-invoices", raw(msg)).reason


@pytest.mark.parametrize("code", ["91110000600037341M", "91110000600037341", "9111000060003734IL", "91110000600037341l"])
def test_bad_uscc_says_what_is_wrong(code):
    msg = purchase()
    msg["beneficiary"] = {"uscc": code, "name": "x"}
    r = rejected("compute-purchases", raw(msg))
    assert r.code == "invalid-field"
    assert "beneficiary" in r.reason and code in r.reason


def test_bad_provider_uscc():
    msg = purchase()
    msg["provider"] = {"uscc": "91110108551385082R", "name": "x"}
    r = rejected("compute-purchases", raw(msg))
    assert "provider" in r.reason and "should be 'Q'" in r.reason


def test_beneficiary_without_an_identifier():
    msg = purchase()
    msg["beneficiary"] = {"name": "x"}
    assert "uscc" in rejected("compute-purchases", raw(msg)).reason


def test_fractional_json_number_amount():
    data = raw(purchase()).replace(b'"amount": "1000.00"', b'"amount": 1000.5')
    r = rejected("compute-purchases", data)
    assert r.code == "invalid-field"
    assert "amount" in r.reason and "floats are not money" in r.reason and '"1000.50"' in r.reason


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e2"])
def test_non_finite_or_exponent_amount(token):
    # Python's json module reads NaN/Infinity (not JSON) and 1e2 as floats: refused as not money
    data = raw(purchase()).replace(b'"amount": "1000.00"', b'"amount": ' + token)
    assert rejected("compute-purchases", data).code in ("invalid-field", "malformed-json")


def test_fractional_json_number_even_when_whole():
    data = raw(purchase()).replace(b'"amount": "1000.00"', b'"amount": 1000.0')
    assert "fractional JSON number" in rejected("compute-purchases", data).reason


def test_three_decimals():
    r = rejected("compute-purchases", raw(purchase(amount="1000.005")))
    assert "at most 2 fractional digits" in r.reason


def test_negative_amount_refused_on_a_purchase_but_accepted_on_a_refund():
    r = rejected("compute-purchases", raw(purchase(amount="-400.00")))
    assert "amount must not be negative" in r.reason
    refund = one_claim("compute-purchases", purchase(event_id="r-1", amount="-400.00", refund_of="p-1"))
    assert refund.corrects == "p-1" and refund.base == 40000
    positive = one_claim("compute-purchases", purchase(event_id="r-2", amount="400.00", refund_of="p-1"))
    assert positive.base == 40000


def test_negative_amount_on_an_invoice_but_accepted_on_a_credit_note():
    assert "must not be negative" in rejected("model-invoices", raw(invoice(amount="-1.00"))).reason
    assert one_claim("model-invoices", invoice(event_id="c-1", amount="-1.00", credit_of="m-1")).corrects == "m-1"


def test_negative_investment_and_base_amount_refused():
    assert "must not be negative" in rejected("investment-closings", raw(closing(amount="-1.00"))).reason
    msg = award(award="exhibition", subject="WAIC", base_amount="-1.00")
    assert "base_amount must not be negative" in rejected("award-announcements", raw(msg)).reason


@pytest.mark.parametrize(
    "stamp", ["2026-03-01T10:00:00", "2026-03-01", "2026-03-01T10:00+08:00", "2026-03-01T10:00:00+0800", "1772330400", "2026-02-30T10:00:00+08:00"]
)
def test_timestamp_without_offset_or_malformed(stamp):
    r = rejected("compute-purchases", raw(purchase(occurred_at=stamp)))
    assert r.code == "invalid-field"
    assert "occurred_at" in r.reason and ("offset" in r.reason or "real date" in r.reason)


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00", "1969-12-31T23:59:59Z"])
def test_timestamp_outside_the_accepted_years_is_rejected_not_fatal(stamp):
    # Year 0001 at +08:00 once crashed intake: moving it to the policy's zone overflows datetime.
    r = rejected("compute-purchases", raw(purchase(occurred_at=stamp)))
    assert r.code == "invalid-field"
    assert "occurred_at" in r.reason and "outside the years 1970-9998" in r.reason


@pytest.mark.parametrize("event_id", ["", "x" * 129])
def test_event_id_length(event_id):
    assert "event_id" in rejected("compute-purchases", raw(purchase(event_id=event_id))).reason


def test_billing_period_format_and_round_allow_list():
    assert "billing_period" in rejected("model-invoices", raw(invoice(billing_period="2026-13"))).reason
    assert "round" in rejected("investment-closings", raw(closing(round="seed"))).reason
    assert "investors" in rejected("investment-closings", raw(closing(investors=[]))).reason


# --- rejected: against the policy ----------------------------------------------------------


def test_unknown_award_lists_the_known_ones():
    r = rejected("award-announcements", raw(award(award="nobel-prize")))
    assert r.code == "unknown-award"
    assert "nobel-prize" in r.reason and "typical-case" in r.reason and "wu-wenjun-award" in r.reason


def test_unknown_source_lists_the_allowed_ones():
    r = rejected("compute-purchases", raw(purchase(source="someone-else")))
    assert r.code == "unknown-source"
    assert "someone-else" in r.reason and "scc-billing" in r.reason
    # a source allowed on another topic is not allowed here
    assert rejected("compute-purchases", raw(purchase(source="investment-registry"))).code == "unknown-source"


def test_person_payee_refused_on_compute_voucher():
    msg = purchase()
    msg["beneficiary"] = {"person_id": PERSON, "name": "张三"}
    r = rejected("compute-purchases", raw(msg))
    assert r.code == "payee-kind"
    assert "compute-voucher pays enterprise" in r.reason and "uscc" in r.reason


def test_enterprise_payee_refused_on_a_talent_award():
    r = rejected("award-announcements", raw(award(award="wu-wenjun-award", grade="特等奖")))
    assert r.code == "payee-kind" and "person_id or team_ref" in r.reason


def test_person_accepted_on_wu_wenjun_award_and_team_on_theory_breakthrough():
    person = one_claim(
        "award-announcements",
        award(award="wu-wenjun-award", grade="特等奖", subject="2025-wwj-1", beneficiary={"person_id": PERSON, "name": "张三"}),
    )
    assert person.clause_id == "wu-wenjun-award"
    assert person.payee == {"id": PERSON, "kind": "person", "name": "张三"} and person.grade == "特等奖"
    team = one_claim(
        "award-announcements",
        award(award="theory-breakthrough", subject="tb-1", beneficiary={"team_ref": "UESTC-AI-LAB", "name": "某实验室团队"}),
    )
    assert team.clause_id == "theory-breakthrough" and team.payee["kind"] == "team" and team.payee["id"] == "UESTC-AI-LAB"


def test_person_with_a_wrong_check_digit():
    msg = award(award="wu-wenjun-award", grade="特等奖", beneficiary={"person_id": "110105194912310021", "name": "张三"})
    r = rejected("award-announcements", raw(msg))
    assert "person_id" in r.reason and "should be 'X'" in r.reason


def test_graded_award_without_grade():
    msg = award(award="wu-wenjun-award", subject="w", beneficiary={"person_id": PERSON, "name": "张三"})
    r = rejected("award-announcements", raw(msg))
    assert r.code == "missing-grade" and "grade" in r.reason and "特等奖" in r.reason


def test_graded_award_with_another_grade_is_accepted():
    # other grades are paid by `other_grades` (一等奖 and below)
    msg = award(award="wu-wenjun-award", grade="一等奖", subject="w", beneficiary={"person_id": PERSON, "name": "张三"})
    assert one_claim("award-announcements", msg).grade == "一等奖"


@pytest.mark.parametrize("name", ["benchmark-scenario", "exhibition"])
def test_share_award_without_base_amount(name):
    r = rejected("award-announcements", raw(award(award=name, subject="s")))
    assert r.code == "missing-base" and "base_amount" in r.reason
    assert one_claim("award-announcements", award(award=name, subject="s", base_amount="1.00")).base == 100


# --- fiscal year in Asia/Shanghai -------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp, year, day",
    [
        ("2025-12-31T17:00:00Z", 2026, "2026-01-01"),
        ("2025-12-31T15:59:59Z", 2025, "2025-12-31"),
        ("2025-12-31T16:00:00Z", 2026, "2026-01-01"),
        ("2025-12-31T23:59:59+08:00", 2025, "2025-12-31"),
        ("2026-01-01T00:00:00+08:00", 2026, "2026-01-01"),
        ("2026-01-01T01:00:00+09:00", 2026, "2026-01-01"),  # 00:00 in Chengdu
        ("2026-12-31T10:00:00-08:00", 2027, "2027-01-01"),  # 02:00 next day in Chengdu
        ("2025-12-31t17:00:00z", 2026, "2026-01-01"),
        ("2025-12-31T17:00:00.123456789Z", 2026, "2026-01-01"),
    ],
)
def test_fiscal_year_is_counted_in_shanghai_time(stamp, year, day):
    claim = one_claim("compute-purchases", purchase(occurred_at=stamp))
    assert (claim.fiscal_year, claim.day) == (year, day)


# --- programme windows (issue 25; every boundary in tests/scenarios/in-force.yaml) ------------


def test_a_claim_outside_the_programme_says_the_dates_and_the_fix():
    before = rejected("compute-purchases", raw(purchase(occurred_at="2025-08-27T23:59:59+08:00")))
    assert before.code == "outside-programme"
    assert "2025-08-27" in before.reason and "before compute-voucher took effect on 2025-08-28" in before.reason
    after = rejected("compute-purchases", raw(purchase(occurred_at="2099-03-01T10:00:00+08:00")))
    assert after.code == "outside-programme"
    assert "2099-03-01" in after.reason and "after compute-voucher ended on 2028-08-27" in after.reason
    for rejection in (before, after):
        assert "\n" not in rejection.reason and "publish the event again with the day it happened" in rejection.reason


def test_a_message_dated_beyond_the_clock_skew_says_both_times_and_the_fix():
    received = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.timezone.utc)  # 10:00 in Chengdu
    assert intake("compute-purchases", raw(purchase(occurred_at="2026-03-01T10:10:00+08:00")), POLICY, received)
    with pytest.raises(Rejected) as info:
        intake("compute-purchases", raw(purchase(occurred_at="2026-03-01T10:10:01+08:00")), POLICY, received)
    assert info.value.code == "dated-in-future"
    assert info.value.reason == (
        "occurred_at 2026-03-01T10:10:01+08:00 is 0:10:01 after the broker received the message (2026-03-01T10:00:00+08:00), "
        "more than the 0:10:00 clock skew allowed; publish it again with the time it happened, and check the publishing system's clock"
    )
    # without a broker time (a replayed file) there is no such check
    assert intake("compute-purchases", raw(purchase(occurred_at="2026-03-01T10:10:01+08:00")), POLICY)
