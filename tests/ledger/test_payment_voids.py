"""A void in the ledger (SQLite): decide's clawback of an operator's void (topic payment-voids)
voids a payment that has not gone out: out of every batch and re-issue, no receivable, the
budget whole again, the chain verified; a payment that went out keeps an ordinary clawback. An
operator's void request stops the payment before decide reaches the void."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from console.payments import payee_payments, state_totals
from parties import enterprise, uscc
from rules.money import format_fen
from sinks.iso20022_answers import camt054, end_to_end_id, pain002, read_answers
from sinks.ledger import Ledger, PaymentRefused
from sinks.ledger.bank_answers import reissues
from sinks.ledger.payments import current_accounts
from sinks.ledger.receivables import open_receivables
from tests.ledger.factory import TIMEZONE, purchase, run

PROVIDERS = (9_300_000, 9_300_001)
PAYEES = [uscc(p) for p in PROVIDERS]


def void(payment, event_id: str, provider: int) -> tuple[str, dict]:
    return "payment-voids", {"event_id": f"void-{payment.instruction_id}", "source": "subsidy-operators", "occurred_at": "2026-04-20T09:30:00+08:00",
                             "payee": enterprise(provider, name="超算中心"),
                             "payment": {"instruction_id": payment.instruction_id, "clause_id": "compute-voucher", "source": "scc-billing", "event_id": event_id},
                             "operator": "wang.fang", "reason": "payee deregistered"}


@pytest.fixture
def booked(tmp_path):
    """A ledger with one payment to each of two payees (both with an account), and decide's state."""
    state: dict = {}
    out = run([purchase(f"e{n}", n + 1, "1000.00", provider=p) for n, p in enumerate(PROVIDERS)], state)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", timezone=TIMEZONE)
    ledger.record(out.decisions, out.instructions, [])
    ledger.import_payee_accounts([{"source": "registry", "event_id": p, "payee_id": p, "account_name": "收款人", "account_number": f"62220210{n:08d}",
                                   "bank_code": "102651020012", "verified_at": "2026-02-01T02:00:00+00:00", "revoked": False} for n, p in enumerate(PAYEES)])
    yield ledger, state, out.instructions
    ledger.close()


def decide_void(ledger: Ledger, state: dict, payment, event_id: str, provider: int):
    out = run([void(payment, event_id, provider)], state)
    ledger.record(out.decisions, out.instructions, [])
    (clawback,) = out.instructions
    return clawback


def voids(ledger: Ledger) -> list[tuple]:
    with ledger.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT instruction_id, batch_id, actor, clawback_id FROM ledger_payment_voids"))]


def balanced(ledger: Ledger, payee: str) -> None:
    balances = ledger.trial_balance()
    assert sum(balances.values()) == 0 and balances[f"payable:{payee}"] == 0
    assert ledger.verify_chain() == []


def test_a_void_of_a_payment_never_batched_voids_it_and_gives_the_caps_back(booked):
    ledger, state, (first, second) = booked
    used = {scope: cap["used"] for scope, cap in ledger.cap_usage().items()}
    clawback = decide_void(ledger, state, first, "e0", PROVIDERS[0])
    assert voids(ledger) == [(first.instruction_id, None, "wang.fang", clawback.instruction_id)]
    assert ledger.payment_status()[2] == {first.instruction_id: "voided"}
    for step in first.computation.caps:  # the room is back where decide gave it back
        assert ledger.cap_usage()[step.scope]["used"] == used[step.scope] - first.amount
    with ledger.engine.connect() as conn:
        assert open_receivables(conn) == {}
    proposal = ledger.propose_batch("alice")
    assert (proposal.number_of_transactions, proposal.control_sum_fen, proposal.clawbacks) == (1, second.amount, 0)
    assert [item.instruction_id for item in ledger.batch_contents(proposal.batch_id)[1]] == [second.instruction_id]
    balanced(ledger, PAYEES[0])
    stands = {i["instruction_id"]: i["state"] for i in payee_payments(ledger.engine, PAYEES[0], dt.date(2026, 12, 31), 10)["instructions"]}
    assert stands == {first.instruction_id: "voided", clawback.instruction_id: "payment voided"}  # the console's Payments page
    with ledger.engine.connect() as conn:
        assert state_totals(conn)[-1] == {"state": "voided", "payments": 1, "amount_fen": first.amount, "amount": format_fen(first.amount)}
        entry = json.loads(conn.execute(sa.text("SELECT body FROM ledger_chain_events WHERE kind = 'payment-voided'")).scalar_one())
        assert (entry["clawback_id"], entry["state"], entry["postings"]) == (clawback.instruction_id, "decided", [])
        conn.execute(sa.text("DROP TRIGGER ledger_payment_voids_no_update"))
        conn.execute(sa.text("UPDATE ledger_payment_voids SET clawback_id = :c"), {"c": second.instruction_id})
        conn.commit()
    assert any("ledger_payment_voids is missing or differs" in problem for problem in ledger.verify_chain())


def _send_and_reject(ledger: Ledger, first) -> str:
    batch = ledger.propose_batch("alice").batch_id
    ledger.approve_batch(batch, "bob")
    ledger.mark_sent(batch, "carol")
    e2e = end_to_end_id(first.instruction_id, 0)
    ledger.ingest_answers(read_answers(pain002("S1", "2026-04-01T10:00:00+08:00", batch, [(e2e, "RJCT", "AC04", first.amount)])), "bank-file")
    return batch


def test_a_void_of_a_rejected_payment_voids_it_and_it_is_never_re_issued(booked):
    ledger, state, (first, _) = booked
    batch = _send_and_reject(ledger, first)
    clawback = decide_void(ledger, state, first, "e0", PROVIDERS[0])
    assert voids(ledger) == [(first.instruction_id, batch, "wang.fang", clawback.instruction_id)]
    ledger.import_payee_accounts([{"source": "registry", "event_id": "new", "payee_id": PAYEES[0], "account_name": "收款人", "account_number": "6222021099999999",
                                   "bank_code": "102651020012", "verified_at": "2026-04-02T02:00:00+00:00", "revoked": False}])
    with ledger.engine.connect() as conn:
        assert reissues(conn, current_accounts(ledger._accounts(conn)), None, None) == [] and open_receivables(conn) == {}
    batches, waiting, states = ledger.payment_status()
    assert states[first.instruction_id] == "voided" and not waiting and batches[0].states["voided"] == [1, first.amount]
    balanced(ledger, PAYEES[0])


def test_a_void_of_a_settled_payment_stays_an_ordinary_clawback(booked, caplog):
    ledger, state, (first, _) = booked
    batch = ledger.propose_batch("alice").batch_id
    ledger.approve_batch(batch, "bob")
    ledger.mark_sent(batch, "carol")
    e2e = end_to_end_id(first.instruction_id, 0)
    ledger.ingest_answers(read_answers(camt054("N1", "2026-04-01T18:00:00+08:00", "1", [(e2e, first.amount, "2026-04-01", None)])), "bank-file")
    clawback = decide_void(ledger, state, first, "e0", PROVIDERS[0])  # the race: decided after the batch went out
    assert voids(ledger) == []
    assert f"of payment {first.instruction_id} is booked as a receivable: the payment is settled (batch {batch})" in caplog.text
    with ledger.engine.connect() as conn:
        assert [(r.clawback_id, r.owed_fen) for r in open_receivables(conn)[PAYEES[0]]] == [(clawback.instruction_id, first.amount)]
    assert ledger.verify_chain() == []


def test_a_refund_clawback_of_a_payment_voided_later_is_owed_by_no_one(booked):
    ledger, state, (first, _) = booked
    refund = run([purchase("r0", 1, "400.00", provider=PROVIDERS[0], refund_of="e0")], state)
    ledger.record(refund.decisions, refund.instructions, [])
    with ledger.engine.connect() as conn:
        assert open_receivables(conn)[PAYEES[0]][0].owed_fen == 240_00
    clawback = decide_void(ledger, state, first, "e0", PROVIDERS[0])
    assert -clawback.amount == first.amount - 240_00  # what the payment still granted
    with ledger.engine.connect() as conn:
        assert open_receivables(conn) == {}
    assert ledger.receivables("2026-12-31").payees == []
    balanced(ledger, PAYEES[0])


def test_a_void_request_keeps_the_payment_out_of_the_next_batch_until_decide_voids_it(booked):
    ledger, state, (first, second) = booked
    request = ledger.request_void(first.instruction_id, "dora", "payee dissolved")
    assert (request.new, request.state) == (True, "decided")
    message = request.message(ZoneInfo(TIMEZONE))
    assert message["payee"] == {"uscc": PAYEES[0], "name": "超算中心"} and message["payment"]["event_id"] == "e0"
    again = ledger.request_void(first.instruction_id, "erin", "other words")  # the command run again: the same message
    assert not again.new and again.message(ZoneInfo(TIMEZONE)) == message
    proposal = ledger.propose_batch("alice")
    assert proposal.number_of_transactions == 1 and ledger.batch_contents(proposal.batch_id)[1][0].instruction_id == second.instruction_id
    with pytest.raises(PaymentRefused, match=f"payment {second.instruction_id} is batched \\(batch {proposal.batch_id}\\): only a payment not gone out"):
        ledger.request_void(second.instruction_id, "dora", "too late")
    clawback = decide_void(ledger, state, first, "e0", PROVIDERS[0])
    assert voids(ledger) == [(first.instruction_id, None, "wang.fang", clawback.instruction_id)]
    with pytest.raises(PaymentRefused, match="is already voided"):
        ledger.request_void(first.instruction_id, "dora", "again")
    with pytest.raises(PaymentRefused, match="is a clawback: only a payment can be voided"):
        ledger.request_void(clawback.instruction_id, "dora", "no")
    assert ledger.verify_chain() == []


def test_a_void_booked_before_0011_with_its_posting_still_verifies_and_balances(booked):
    """As ``void_payment`` booked a void of a rejected payment: a ``void`` posting payable -> budget."""
    ledger, _, (first, second) = booked
    batch = _send_and_reject(ledger, first)
    payable, budget = f"payable:{PAYEES[0]}", f"budget:{first.policy_id}:compute-voucher:2026"
    with ledger.engine.begin() as conn:
        head = ledger._lock(conn)
        posting = [f"void:{first.instruction_id}", first.instruction_id, "void", payable, budget, first.amount]
        body = {"instruction_id": first.instruction_id, "batch_id": batch, "end_to_end_id": end_to_end_id(first.instruction_id, 0), "state": "rejected",
                "actor": "dora", "reason": "old", "voided_at": "2026-04-02T00:00:00+00:00", "postings": [posting]}
        seq, _ = ledger._chain(conn, head, "payment-voided", batch, "dora", body, "2026-04-02T00:00:00+00:00")
        conn.execute(sa.text("INSERT INTO ledger_payment_voids (instruction_id, batch_id, actor, reason, chain_seq, recorded_at) VALUES (:i, :b, 'dora', 'old', :s, 'now')"),
                     {"i": first.instruction_id, "b": batch, "s": seq})
        conn.execute(sa.text("INSERT INTO ledger_payment_postings VALUES (:p, :i, 'void', :d, :c, :f, :s, 'now')"),
                     {"p": posting[0], "i": first.instruction_id, "d": payable, "c": budget, "f": first.amount, "s": seq})
    assert ledger.payment_status()[2][first.instruction_id] == "voided"
    balanced(ledger, PAYEES[0])
    assert ledger.trial_balance()[budget] == second.amount  # the voided payment's money is back on the budget


def test_payments_void_overdue_asks_decide_to_void_what_the_bank_refused_longer_ago_than_the_policy_waits(booked, tmp_path, capsys):
    """The shipped policies wait 180 days (void_unpaid_after); the bank refused this one on 2026-04-01."""
    from rules.intake import intake
    from rules.policy import load_policy
    from subsidy.cli import main

    ledger, state, (first, second) = booked
    _send_and_reject(ledger, first)
    events, argv = tmp_path / "voids.jsonl", ["payments", "void", "--overdue", "--as", "nightly-run", "--ledger", str(ledger.engine.url)]
    assert main([*argv, "--to", str(events)]) == 0
    assert "out of every batch and re-issue from now; appended to" in capsys.readouterr().out
    (line,) = events.read_text(encoding="utf-8").splitlines()
    message = json.loads(line)["value"]
    assert message["payment"]["instruction_id"] == first.instruction_id and message["operator"] == "nightly-run"
    assert message["reason"].startswith("rejected by the bank (AC04) on 2026-04-01, no corrected account within 180 day(s)")
    assert ledger.payment_status()[2][first.instruction_id] == "void-requested"
    assert main([*argv, "--to", str(events)]) == 0 and "nothing to void" in capsys.readouterr().out  # requested already
    (claim,) = intake("payment-voids", json.dumps(message).encode(), load_policy())
    assert claim.voids is not None and claim.voids["instruction_id"] == first.instruction_id
    assert main(["payments", "void", first.instruction_id, "--overdue", "--as", "x", "--to", str(events), "--ledger", str(ledger.engine.url)]) == 2
    assert "name one payment (INSTRUCTION) or say --overdue, not both" in capsys.readouterr().err


def test_a_payment_refunded_whole_then_its_void_requested_is_owed_by_no_one_though_decide_refuses_the_void(booked):
    """The refund left the payment granting nothing, so decide refuses its void (nothing-to-void):
    the payment stays stopped, and the refund's clawback is not netted against the payee's others."""
    ledger, state, (first, _) = booked
    refund = run([purchase("r0", 1, "1000.00", provider=PROVIDERS[0], refund_of="e0")], state)
    ledger.record(refund.decisions, refund.instructions, [])
    ledger.request_void(first.instruction_id, "dora", "payee dissolved")
    from rules.engine import Engine
    from rules.intake import intake
    from tests.ledger.factory import policy

    topic, value = void(first, "e0", PROVIDERS[0])
    (claim,) = intake(topic, json.dumps(value).encode(), policy())
    assert Engine(policy(), state).decide(claim).rejection[0] == "nothing-to-void"  # type: ignore[index]
    with ledger.engine.connect() as conn:
        assert open_receivables(conn) == {}
    assert ledger.payment_status()[2] == {} and ledger.verify_chain() == []
