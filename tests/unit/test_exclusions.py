"""Payee exclusions (contract v1.1): the message, and which listing holds a payment until when.
The from/to boundaries through intake and the engine are scenarios in tests/scenarios/exclusions.yaml."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from rules.exclusions import Exclusions, Listing, listing_from
from rules.intake import Rejected
from rules.policy import load_policy
from schemas.export import EXAMPLES_DIR, SCHEMA_DIR

POLICY = load_policy()
EXAMPLE = json.loads((EXAMPLES_DIR / "payee-exclusions.json").read_text(encoding="utf-8"))
SCHEMA = Draft202012Validator(json.loads((SCHEMA_DIR / "payee-exclusions.json").read_text(encoding="utf-8")), format_checker=FormatChecker())
PROVIDER = EXAMPLE["beneficiary"]["uscc"]
D = dt.date.fromisoformat


def message(**changes) -> dict:
    return {**EXAMPLE, **changes}


def listing(payee: str = PROVIDER, starts: str = "2026-04-08", ends: str | None = "2026-10-07", reference: str = "（2026）川01执1234号",
            occurred_at: str = "2026-04-08T09:00:00+08:00", event_id: str = "x1", kind: str = "dishonest-judgment-debtor") -> Listing:
    return Listing(payee, kind, reference, D(starts), None if ends is None else D(ends), "chengdu-credit-platform", event_id, occurred_at)


# --- the message ------------------------------------------------------------------------------


def test_the_example_is_a_listing_of_its_payee():
    assert listing_from(json.dumps(EXAMPLE, ensure_ascii=False).encode(), POLICY) == listing(event_id="cdcredit-2026-000731")


@pytest.mark.parametrize(
    "changes, schema_ok, problem",
    [
        ({"to": None}, True, None),  # null is no end, as an absent `to`
        ({"from": "2026-4-8"}, False, "is not a date like"),
        ({"from": "2026-02-30"}, False, "is not a real date"),
        ({"to": "2026-04-07"}, True, "to (2026-04-07) is before from (2026-04-08)"),
        ({"list": "失信被执行人"}, False, "list:"),
        ({"reference": ""}, False, "reference:"),
        ({"listed_until": "2026-10-07"}, False, "listed_until: unknown field"),
        ({"source": "someone-else"}, True, "may not publish to payee-exclusions; allowed: chengdu-credit-platform"),
    ],
)
def test_a_bad_message_is_rejected_in_one_line(changes, schema_ok, problem):
    document = message(**changes)
    assert (list(SCHEMA.iter_errors(document)) == []) is schema_ok
    raw = json.dumps(document, ensure_ascii=False).encode()
    if problem is None:
        assert listing_from(raw, POLICY).ends is None
        return
    with pytest.raises(Rejected) as info:
        listing_from(raw, POLICY)
    assert problem in info.value.reason and "\n" not in info.value.reason


def test_a_listing_is_json_able():
    for one in (listing(), listing(ends=None)):
        assert Listing.from_dict(json.loads(json.dumps(one.to_dict()))) == one


# --- holds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claim_day, held, payable_from",
    [
        ("2026-04-07", False, "2026-04-07"),  # the day before the listing
        ("2026-04-08", True, "2026-10-08"),  # its first day
        ("2026-10-07", True, "2026-10-08"),  # its last day (`to` is in the listing)
        ("2026-10-08", False, "2026-10-08"),  # the day after
    ],
)
def test_from_and_to_are_both_days_of_the_listing(claim_day, held, payable_from):
    exclusions = Exclusions([listing()])
    assert (exclusions.hold([PROVIDER], D(claim_day)) is not None) is held
    assert exclusions.payable_from([PROVIDER], D(claim_day)) == D(payable_from)


def test_a_held_payment_is_released_the_day_after_the_listing_ends():
    exclusions = Exclusions([listing()])
    assert exclusions.hold([PROVIDER], D("2026-05-01"), on=D("2026-10-07")) == listing()
    assert exclusions.hold([PROVIDER], D("2026-05-01"), on=D("2026-10-08")) is None


def test_a_listing_with_no_end_holds_until_a_later_message_gives_one():
    exclusions = Exclusions([listing(ends=None)])
    assert exclusions.payable_from([PROVIDER], D("2026-05-01")) is None
    assert exclusions.hold([PROVIDER], D("2026-05-01"), on=D("2030-01-01")) is not None
    lifted = listing(ends="2026-06-30", occurred_at="2026-07-01T09:00:00+08:00", event_id="x2")
    assert exclusions.add(lifted)
    assert exclusions.payable_from([PROVIDER], D("2026-05-01")) == D("2026-07-01")
    assert "with no end yet" in listing(ends=None).named and "to 2026-06-30" in lifted.named


def test_the_newer_message_about_a_listing_wins_whatever_the_arrival_order():
    first, lifted = listing(ends=None), listing(ends="2026-06-30", occurred_at="2026-07-01T09:00:00+08:00", event_id="x2")
    in_order, reversed_order = Exclusions([first, lifted]), Exclusions()
    assert reversed_order.add(lifted) and not reversed_order.add(first)
    assert in_order.listings(PROVIDER) == reversed_order.listings(PROVIDER) == [lifted]


def test_a_payee_listed_after_the_claim_is_not_paid_while_listed():
    exclusions = Exclusions([listing()])
    assert exclusions.hold([PROVIDER], D("2026-03-01")) is None
    assert exclusions.hold([PROVIDER], D("2026-03-01"), on=D("2026-05-01")) == listing()


def test_of_several_listings_the_one_that_holds_longest_is_named_and_back_to_back_ones_chain():
    short = listing(ends="2026-06-30", reference="A")
    follows = listing(starts="2026-07-01", ends="2026-12-31", reference="B", kind="debarred")
    exclusions = Exclusions([short, follows, listing(ends="2026-09-30", reference="C")])
    assert exclusions.hold([PROVIDER], D("2026-05-01")).reference == "C"
    # held by A and C until 2026-09-30, by B (listed from 07-01) until the year's end
    assert exclusions.payable_from([PROVIDER], D("2026-05-01")) == D("2027-01-01")
    assert exclusions.hold([PROVIDER], D("2026-05-01"), on=D("2026-10-01")).reference == "B"


def test_any_listed_party_holds_the_payment():
    buyer = "91510100MA6000001R"
    exclusions = Exclusions([listing(payee=buyer)])
    assert exclusions.hold([PROVIDER, buyer], D("2026-05-01")).payee_id == buyer
    assert exclusions.hold([PROVIDER], D("2026-05-01")) is None
    assert exclusions.hold(["91510107MA6000001Y"], D("2026-05-01")) is None
