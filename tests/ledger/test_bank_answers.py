"""The bank's answers in the ledger (SQLite): a state an answer may not follow is refused with the
whole file, a void only of a payment not gone out, and rows added behind the ledger's back are found
against the chain entries that hold the answers, postings and voids."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from parties import uscc
from rules.money import format_fen, parse_amount
from rules.payment_status import status_from
from rules.policy import load_policy
from schemas.outputs import rejection_id, rejection_record
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
    with pytest.raises(PaymentRefused, match="is sent .* only a payment not gone out .* can be voided"):
        ledger.request_void(ledger.resolve_instruction(second), "dora", "no")
    request = ledger.request_void(ledger.resolve_instruction(first), "dora", "payee dissolved")
    assert request.state == "rejected" and ledger.payment_status()[2][request.instruction_id] == "void-requested"
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


def _status(event_id: str, e2e: str, status: str, amount: str | None = None, reason: str | None = None, offset: int = 0):
    """A payment-status message as intake hands it to the ledger (rules/payment_status.py)."""
    value = {"event_id": event_id, "source": "bank-connector", "occurred_at": "2026-04-01T18:00:00+08:00", "end_to_end_id": e2e, "status": status}
    value |= {"amount": amount} if amount else {}
    value |= {"reason_code": reason} if reason else {}
    raw = json.dumps(value).encode()
    when = dt.datetime(2026, 4, 1, 10, tzinfo=dt.timezone.utc)
    return status_from(raw, load_policy(), b"k", rejection_id("payment-status", 0, offset, raw),
                       lambda code, why: rejection_record("payment-status", 0, offset, b"k", raw, code, why, when))


def test_payment_status_messages_are_booked_each_on_its_own_and_a_misfit_is_a_rejection(sent):
    ledger, payments = sent
    (first, fen), (second, fen2), (third, _) = payments
    statuses = [_status("s4", first, "returned", reason="AC04", offset=1),  # before its settlement: not allowed yet
                _status("s1", first, "settled", format_fen(fen), offset=2),
                _status("s2", second, "settled", "1.00", offset=3),  # not the amount sent
                _status("s3", "0" * 32, "accepted", offset=4),  # no such payment
                _status("s5", second, "rejected", reason="AC01", offset=5)]
    result = ledger.book_statuses(statuses, "pipeline")
    assert result.booked == {"settled": 1, "rejected": 1} and (result.already, result.repeated) == (0, 0)
    assert [(r["offset"], r["code"]) for r in result.rejections] == [(1, "state-not-allowed"), (3, "amount-differs"), (4, "unknown-payment")]
    assert "returned, but the payment is sent" in result.rejections[0]["reason"] and "differs from the" in result.rejections[1]["reason"]
    assert ledger.trial_balance()["bank:disbursement"] == -fen  # the settlement, double-entry, as a file's would be
    _, _, states = ledger.payment_status()
    assert sorted(states.values()) == ["rejected", "sent", "settled"]

    # redelivered (a worker restarted before its offsets were committed): nothing booked twice, the
    # same rejections, even of s4, which would fit now
    again = ledger.book_statuses([*statuses, _status("s1", first, "settled", format_fen(fen), offset=6), _status("s6", first, "accepted", offset=7),
                                  _status("s1", first, "returned", reason="AC04", offset=8)], "pipeline")
    assert again.booked == {} and (again.already, again.repeated) == (3, 1)  # s1 (twice) and s5 again; an accepted after settled
    assert [(r["offset"], r["code"]) for r in again.rejections] == [(1, "state-not-allowed"), (3, "amount-differs"), (4, "unknown-payment"), (8, "event-id-reused")]
    with ledger.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM ledger_rejections WHERE topic = 'payment-status'")).scalar_one() == 4
    assert ledger.verify_chain() == []
    # a file's answers are still all or none
    with pytest.raises(AnswersRefused):
        ledger.ingest_answers(read_answers(camt054("N2", "2026-04-02T18:00:00+08:00", "2", [(third, fen, "2026-04-02", None), ("f" * 32, fen, "2026-04-02", None)])), "bank-file")
    assert ledger.payment_status()[2][ledger.resolve_instruction(third)] == "sent"
