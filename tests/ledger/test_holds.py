"""Held payments (contract v1.1 payee-exclusions): a payment of a listed payee is booked, held by
the listing the pure rule names, and released on the day it gives; holds are facts."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from rules.exclusions import Exclusions, Listing
from sinks.cli import main
from sinks.ledger import InvalidRecord, Ledger, LedgerConflict
from tests.ledger.factory import TIMEZONE, purchase, run

D = dt.date.fromisoformat
EVENTS = [
    purchase("e1", 1, "1000.00", when="2026-05-01T09:00:00+08:00"),
    purchase("e2", 2, "2000.00", when="2026-05-02T09:00:00+08:00"),
    purchase("r1", 1, "500.00", refund_of="e1", when="2026-05-03T09:00:00+08:00"),
]


@pytest.fixture
def booked(ledger_url):
    out = run(EVENTS)
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, out.rejections)
    payments = [i.to_wire() for i in out.instructions if i.kind == "payment"]
    provider = payments[0]["payee"]["id"]
    listing = Listing(provider, "dishonest-judgment-debtor", "（2026）川01执1234号", D("2026-04-08"), D("2026-10-07"),
                      "chengdu-credit-platform", "x1", "2026-04-08T09:00:00+08:00")
    return ledger_url, payments, listing, out


def test_a_held_payment_is_listed_until_released_on_the_day_the_rule_gives(booked, capsys):
    url, payments, listing, _ = booked
    exclusions = Exclusions([listing])
    with Ledger.open(url, timezone=TIMEZONE) as ledger:
        for payment in payments:
            day = dt.datetime.fromisoformat(payment["occurred_at"]).date()
            holding = exclusions.hold([payment["payee"]["id"], payment["beneficiary"]["id"]], day)
            assert holding == listing
            assert ledger.hold(payment["instruction_id"], holding, day)
            assert not ledger.hold(payment["instruction_id"], holding, day)  # a repeat is a no-op
        held = ledger.holds()
        assert [h["instruction_id"] for h in held] == [p["instruction_id"] for p in payments]
        assert held[0] | {"instruction_id": "", "payee_id": ""} == {
            "instruction_id": "", "payee_id": "", "clause_id": "compute-voucher", "fiscal_year": 2026, "amount": "600.00",
            "listed_party": listing.payee_id, "list": "dishonest-judgment-debtor", "reference": "（2026）川01执1234号",
            "held_from": "2026-05-01", "released_on": None}
        released_on = exclusions.payable_from([listing.payee_id], D("2026-05-01"))
        assert released_on == D("2026-10-08")
        assert ledger.release(payments[0]["instruction_id"], released_on)
        assert not ledger.release(payments[0]["instruction_id"], released_on)
        assert [h["instruction_id"] for h in ledger.holds()] == [payments[1]["instruction_id"]]
        assert [h["released_on"] for h in ledger.holds(released=True)] == ["2026-10-08", None]
    assert main(["ledger", "holds", "--ledger", url]) == 0
    text = capsys.readouterr().out
    assert payments[1]["instruction_id"] in text and payments[0]["instruction_id"] not in text
    assert "held from 2026-05-02 by dishonest-judgment-debtor （2026）川01执1234号" in text and "held today: 1200.00 CNY in 1 payments" in text
    assert main(["ledger", "holds", "--ledger", url, "--all", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["holds"]) == 2


def test_only_a_booked_payment_is_held_and_a_hold_or_release_is_not_rewritten(booked):
    url, payments, listing, out = booked
    clawback = next(i for i in out.instructions if i.kind == "clawback")
    payment = payments[0]["instruction_id"]
    with Ledger.open(url, timezone=TIMEZONE) as ledger:
        with pytest.raises(InvalidRecord, match="not in the ledger"):
            ledger.hold("0" * 32, listing, D("2026-05-01"))
        with pytest.raises(InvalidRecord, match="a clawback: only a booked payment is held"):
            ledger.hold(clawback.instruction_id, listing, D("2026-05-03"))
        with pytest.raises(InvalidRecord, match="is not held"):
            ledger.release(payment, D("2026-10-08"))
        ledger.hold(payment, listing, D("2026-05-01"))
        with pytest.raises(LedgerConflict, match="held_from"):
            ledger.hold(payment, listing, D("2026-05-02"))
        with pytest.raises(InvalidRecord, match="before that"):
            ledger.release(payment, D("2026-04-30"))
        ledger.release(payment, D("2026-10-08"))
        with pytest.raises(LedgerConflict, match="released_on"):
            ledger.release(payment, D("2026-10-09"))
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), ledger.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM ledger_hold_releases")
