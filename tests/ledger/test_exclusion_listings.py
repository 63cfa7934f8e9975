"""Listings of payee-exclusions booked with the batches: the ledger holds and releases the payments
they cover in the booking transaction, so a listing booked before its payments and one booked
after them give the same holds."""

from __future__ import annotations

import datetime as dt

import pytest

from parties import enterprise
from rules.exclusions import Listing
from sinks.ledger import Ledger, LedgerConflict
from tests.ledger.factory import TIMEZONE, purchase, run
from tests.ledger.test_payments import account

D = dt.date.fromisoformat
PROVIDER = enterprise(9_000_000)["uscc"]
BUYER_2 = enterprise(2)["uscc"]
EVENTS = [
    purchase("e1", 1, "1000.00", when="2026-05-01T09:00:00+08:00"),
    purchase("e2", 2, "2000.00", when="2026-05-02T09:00:00+08:00"),
    purchase("e3", 3, "3000.00", when="2026-07-05T09:00:00+08:00"),
    purchase("e4", 2, "4000.00", provider=9_000_001, when="2026-08-01T09:00:00+08:00"),
]


def listing(payee: str, event_id: str, reference: str, starts: str, ends: str | None, occurred_at: str) -> Listing:
    return Listing(payee, "dishonest-judgment-debtor", reference, D(starts), None if ends is None else D(ends), "chengdu-credit-platform", event_id, occurred_at)


# the provider listed with no end, then the same listing ended on 06-30 by a later message; the
# second buyer listed from 07-10 with no end (it holds the voucher the provider is paid for it)
OPENED = listing(PROVIDER, "x1", "川01执1号", "2026-04-08", None, "2026-04-08T09:00:00+08:00")
ENDED = listing(PROVIDER, "x2", "川01执1号", "2026-04-08", "2026-06-30", "2026-07-01T09:00:00+08:00")
BUYER_LISTED = listing(BUYER_2, "x3", "川01执2号", "2026-07-10", None, "2026-07-10T09:00:00+08:00")


# e1 and e2 held from their days by the provider's listing and released the day after it ended;
# e3 (07-05), after it ended, not held (or, when booked while the listing had no end yet, released
# on its own day: never kept from being paid); e4 (08-01, another provider) held by its buyer's
# listing, which has no end
EXPECTED = [
    ("2026-05-01", "川01执1号", PROVIDER, "2026-07-01"),
    ("2026-05-02", "川01执1号", PROVIDER, "2026-07-01"),
    ("2026-08-01", "川01执2号", BUYER_2, None),
]


@pytest.mark.parametrize("order", [
    ["x1", "x2", "x3", "payments"],  # every listing first
    ["payments", "x1", "x2", "x3"],  # every payment first
    ["x2", "payments", "x3", "x1"],  # the end before the payments, the opening (older) last
    ["x1", "payments", "x2", "x3"],  # held with no end, then released
])
def test_listings_before_or_after_the_payments_give_the_same_holds(ledger_url, order):
    out = run(EVENTS)
    batches = {"x1": [OPENED], "x2": [ENDED], "x3": [BUYER_LISTED]}
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        for step in order:
            if step == "payments":
                ledger.record(out.decisions, out.instructions, [])
            else:
                ledger.record([], [], [], batches[step])
        holds = [h for h in ledger.holds(released=True) if h["released_on"] != h["held_from"]]
        today = ledger.holds()
    payments = {i.instruction_id: i.to_wire() for i in out.instructions}
    assert [(h["held_from"], h["reference"], h["listed_party"], h["released_on"]) for h in holds] == EXPECTED
    assert [payments[h["instruction_id"]]["occurred_at"][:10] for h in holds] == ["2026-05-01", "2026-05-02", "2026-08-01"]
    assert [h["held_from"] for h in today] == ["2026-08-01"]  # released on 07-01, a day past


def test_a_payment_in_a_batch_is_not_held_by_a_listing_booked_after(ledger_url):
    out = run(EVENTS[:1])
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, [])
        ledger.import_payee_accounts([account(PROVIDER)])
        assert ledger.propose_batch("maker").batch_id
        ledger.record([], [], [], [OPENED])
        assert ledger.holds(released=True) == []


def test_a_listing_repeated_is_a_no_op_and_changed_a_conflict(ledger_url):
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        assert ledger.record([], [], [], [OPENED]).new_listings == 1
        assert ledger.record([], [], [], [OPENED]).new_listings == 0
        with pytest.raises(LedgerConflict, match="listing x1"):
            ledger.record([], [], [], [listing(PROVIDER, "x1", "川01执1号", "2026-04-09", None, "2026-04-08T09:00:00+08:00")])
        assert ledger.listings([PROVIDER]).listings(PROVIDER) == [OPENED]
