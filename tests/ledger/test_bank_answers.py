"""The bank's answers in the ledger (SQLite): a state an answer may not follow is refused with the
whole file, a void only of a failed payment, and rows added behind the ledger's back are found
against the chain entries that hold the answers, postings and voids."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from parties import uscc
from rules.money import parse_amount
from sinks.export import batch_pain001
from sinks.iso20022_answers import camt054, pain002, read_answers
from sinks.ledger import AnswersRefused, Ledger, PaymentRefused
from tests.ledger.factory import TIMEZONE, purchase, run

PAYEES = [uscc(9_200_000 + n) for n in range(3)]


@pytest.fixture
def sent(tmp_path):
    """A ledger with one sent batch of three payments, and their EndToEndIds and amounts."""
    out = run([purchase(f"e{n}", n + 1, "1000.00", provider=9_200_000 + n) for n in range(3)])
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", timezone=TIMEZONE)
    ledger.record(out.decisions, out.instructions, [])
    ledger.import_payee_accounts([{"source": "registry", "event_id": p, "payee_id": p, "account_name": "收款人", "account_number": f"62220210{n:08d}",
                                   "bank_code": "102651020012", "verified_at": "2026-02-01T02:00:00+00:00", "revoked": False} for n, p in enumerate(PAYEES)])
    batch = ledger.propose_batch("alice").batch_id
    ledger.approve_batch(batch, "bob")
    state, items = ledger.batch_contents(batch)
    ledger.mark_sent(batch, "carol")
    payments = [(e2e.text, parse_amount(amount.text)) for e2e, amount in zip(*_fields(batch_pain001(state, items, created_at="2026-04-01T09:00:00+08:00", execution_date="2026-04-01")))]
    yield ledger, payments
    ledger.close()


def _fields(xml: bytes):
    from lxml import etree

    root = etree.fromstring(xml)
    return root.findall(".//{*}EndToEndId"), root.findall(".//{*}InstdAmt")


def test_an_answer_its_payment_state_does_not_allow_refuses_the_whole_file(sent):
    ledger, payments = sent
    (first, fen), (second, fen2), _ = payments
    ledger.ingest_answers(read_answers(pain002("S1", "2026-04-01T10:00:00+08:00", "PB000001", [(first, "RJCT", "AC04", fen)])), "bank-file")
    late = camt054("N1", "2026-04-01T18:00:00+08:00", "1", [(second, fen2, "2026-04-01", None), (first, fen, "2026-04-01", None)])
    with pytest.raises(AnswersRefused) as refused:
        ledger.ingest_answers(read_answers(late), "bank-file")
    assert refused.value.problems == [f"camt.054 N1: EndToEndId {first}: settled, but the payment is rejected (batch PB000001)"]
    assert "bank:disbursement" not in ledger.trial_balance()  # nothing of the refused file was booked
    with pytest.raises(PaymentRefused, match="is sent .* only a rejected or returned payment can be voided"):
        ledger.void_payment(ledger.resolve_instruction(second), "dora", "no")
    iid = ledger.resolve_instruction(first)
    sending, budget = ledger.void_payment(iid, "dora", "payee dissolved")
    assert sending.state == "rejected" and budget.startswith("budget:") and ledger.trial_balance()[f"payable:{sending.payee_id}"] == 0
    assert ledger.verify_chain() == []


def test_rows_added_behind_the_ledgers_back_are_found(sent):
    ledger, payments = sent
    ledger.ingest_answers(read_answers(camt054("N1", "2026-04-01T18:00:00+08:00", "1", [(e2e, fen, "2026-04-01", None) for e2e, fen in payments])), "bank-file")
    assert ledger.verify_chain() == []
    with ledger.engine.begin() as conn:
        seq = conn.execute(sa.text("SELECT chain_seq FROM ledger_payment_postings LIMIT 1")).scalar_one()
        conn.execute(sa.text("INSERT INTO ledger_payment_postings VALUES ('extra', (SELECT instruction_id FROM ledger_batch_items LIMIT 1), 'return', "
                             "'bank:disbursement', 'payable:x', 100, :seq, 'now')"), {"seq": seq})
    assert ledger.verify_chain() == [f"chain seq {seq} (bank-answers): its postings in ledger_payment_postings differ from what the entry holds"]
