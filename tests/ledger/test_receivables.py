"""Clawbacks as receivables: netted against the same payee's next payments when a batch is
proposed (offsets in the hash chain, double entry), the rest aged (sinks/ledger/receivables.py)."""

from __future__ import annotations

import json

import pytest

from parties import uscc
from sinks.ledger import Ledger, PaymentRefused
from sinks.ledger.receivables import OpenReceivable, age_bucket, net_payments
from sinks.reconcile import internal_differences
from subsidy.cli import main
from tests.ledger.factory import TIMEZONE, purchase, run
from tests.ledger.test_payments import account

OWES, OTHER = uscc(9_000_000), uscc(9_000_001)  # providers: compute vouchers pay the provider 60 %
FIRST = [purchase("e1", 1, "1000.00"), purchase("e2", 2, "200.00", provider=9_000_001)]
# e1 refunded whole after it was batched: 600.00 owed back; then 60.00 and 60.02 for OWES, 30.00 for OTHER
LATER = [*FIRST, purchase("r1", 1, "1000.00", refund_of="e1", when="2026-03-11T10:00:00+08:00"),
         purchase("e3", 3, "100.00", when="2026-04-01T10:00:00+08:00"), purchase("e4", 4, "50.00", provider=9_000_001, when="2026-04-01T10:00:00+08:00")]


def test_netting_is_to_the_fen_oldest_receivable_first_and_never_below_zero():
    owed = {"P": [OpenReceivable("c1", "2026-01-01", 150), OpenReceivable("c2", "2026-02-01", 1_000)]}
    paid, netted = net_payments([("i1", "P", 100, "x"), ("i2", "Q", 70, "y"), ("i3", "P", 1_000_01, "z"), ("i4", "P", 5, "w")], owed)
    assert paid == [("i2", "Q", 70, "y"), ("i3", "P", 1_000_01 - 50 - 1_000, "z"), ("i4", "P", 5, "w")]  # i1 paid 0: in no item
    assert [(o.payment_id, o.clawback_id, o.amount_fen) for o in netted] == [("i1", "c1", 100), ("i3", "c1", 50), ("i3", "c2", 1_000)]
    assert owed == {"P": []}
    assert [age_bucket(d) for d in (0, 30, 31, 90, 91, 180, 181)] == ["0-30", "0-30", "31-90", "31-90", "91-180", "91-180", ">180"]


def trial_balance(ledger: Ledger) -> int:
    return sum(ledger.account_balances().values())


def test_a_payee_owing_more_than_its_next_payment_is_paid_nothing_and_still_owes_the_rest(tmp_path):
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", timezone=TIMEZONE) as ledger:
        first = run(FIRST)
        ledger.record(first.decisions, first.instructions, [])
        ledger.import_payee_accounts([account(OWES), account(OTHER, "6222000000000001")])
        assert ledger.propose_batch("alice").control_sum_fen == 600_00 + 120_00
        later = run(LATER)
        ledger.record(later.decisions, later.instructions, [])
        clawback = next(i for i in later.instructions if i.kind == "clawback")
        assert clawback.amount == -600_00 and ledger.receivables("2026-03-20").total_fen == 600_00

        proposal = ledger.propose_batch("alice")  # OWES's 60.00 netted whole; OTHER's 30.00 paid
        assert (proposal.number_of_transactions, proposal.control_sum_fen, proposal.offsets, proposal.offsets_fen) == (1, 30_00, 1, 60_00)
        _, items = ledger.batch_contents(proposal.batch_id)
        assert [(i.payee_id, i.amount_fen) for i in items] == [(OTHER, 30_00)]
        with pytest.raises(PaymentRefused, match="nothing to batch"):
            ledger.propose_batch("alice")  # the payment netted whole is not taken again

        report = ledger.receivables("2099-12-31")  # after the offsets were recorded (now)
        [payee] = report.payees
        assert (payee.payee_id, payee.owed_fen, payee.since, payee.buckets[">180"], report.total_fen) == (OWES, 540_00, "2026-03-11", 540_00, 540_00)
        # as of a day before the offset was recorded, the clawback is owed whole, and young
        assert ledger.receivables("2026-04-01").payees[0].buckets["0-30"] == 600_00

        again = run([*LATER, purchase("e5", 5, "1000.00", when="2026-05-01T10:00:00+08:00")])  # 600.00: the 540.00 left netted, 60.00 paid
        ledger.record(again.decisions, again.instructions, [])
        assert ledger.propose_batch("carol").control_sum_fen == 60_00
        assert ledger.receivables().payees == []

        balances = ledger.account_balances()
        assert trial_balance(ledger) == 0
        assert balances[f"receivable:{OWES}"] == -600_00  # the whole clawback recovered by offsets
        assert internal_differences(ledger) == [] and ledger.verify_chain() == []


def test_an_offset_edited_or_removed_behind_the_ledger_is_found(tmp_path):
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", timezone=TIMEZONE) as ledger:
        out = run([*FIRST, purchase("r1", 1, "500.00", refund_of="e1", when="2026-03-11T10:00:00+08:00")])
        ledger.record(out.decisions, out.instructions, [])
        ledger.import_payee_accounts([account(OWES), account(OTHER, "6222000000000001")])
        assert ledger.propose_batch("alice").offsets_fen == 300_00  # e1's own clawback netted: 300.00 paid
        with ledger.engine.begin() as conn:
            for action in ("update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER ledger_offsets_no_{action}")
            conn.exec_driver_sql("UPDATE ledger_offsets SET amount_fen = 1")
        assert any("offset of batch PB000001" in p and "edited" in p for p in ledger.verify_chain())
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM ledger_offsets")
        assert any("chain head" in p and "entries were removed" in p for p in ledger.verify_chain())  # the offset was the chain's last entry


def test_subsidy_ledger_receivables(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    with Ledger.open(url, timezone=TIMEZONE) as ledger:
        out = run([*FIRST, purchase("r1", 1, "1000.00", refund_of="e1", when="2026-03-11T10:00:00+08:00")])
        ledger.record(out.decisions, out.instructions, [])
    assert main(["ledger", "receivables", "--as-of", "2026-06-30", "--ledger", url]) == 0
    text = capsys.readouterr().out
    [line] = [line for line in text.splitlines() if OWES in line]
    assert line.split()[1:7] == ["2026-03-11", "600.00", "0.00", "0.00", "600.00", "0.00"] and "1 payee(s) owe 600.00 CNY back" in text
    assert main(["ledger", "receivables", "--as-of", "2026-06-30", "--json", "--ledger", url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["total"] == "600.00" and report["buckets"] == {"0-30": "0.00", "31-90": "0.00", "91-180": "600.00", ">180": "0.00"}
    with pytest.raises(SystemExit):
        main(["ledger", "receivables", "--as-of", "30 June", "--ledger", url])
    assert "'30 June' is not a date" in capsys.readouterr().err
