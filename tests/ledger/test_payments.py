"""Payments in the ledger: payee accounts, maker-checker batches, the payment events, their places
in the hash chain, and the payment file (sinks/ledger/payments.py, sinks/export.py)."""

from __future__ import annotations

import dataclasses
import io
import xml.etree.ElementTree as ET

import pytest
import sqlalchemy as sa

from parties import uscc
from rules.money import format_fen, parse_amount
from sinks.export import PAIN001_NS, batch_pain001, pain001_schema
from sinks.ledger import Ledger, PaymentRefused
from sinks.ledger.payments import Account, current_accounts
from tests.ledger.factory import TIMEZONE, purchase, run

PAID = uscc(9_000_000)  # the factory's provider: compute vouchers pay the provider
UNKNOWN = uscc(9_000_001)  # a provider with no account
BANK = "102651020012"
EVENTS = [
    purchase("e1", 1, "1000.00"),
    purchase("e2", 2, "2500.50"),
    purchase("e3", 3, "100.00", provider=9_000_001),
    purchase("r1", 1, "500.00", refund_of="e1", when="2026-03-11T10:00:00+08:00"),
]


def account(payee: str, number: str = "6222021001012345678", verified: str = "2026-02-01T02:00:00+00:00", revoked: bool = False, event: str | None = None) -> dict:
    return {"source": "registry", "event_id": event or f"{payee}-{number}-{verified}-{revoked}", "payee_id": payee, "account_name": "超算中心",
            "account_number": number, "bank_code": BANK, "verified_at": verified, "revoked": revoked}


def statuses(ledger: Ledger) -> dict[str, list[str]]:
    with ledger.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT instruction_id, status FROM ledger_payment_events ORDER BY at, status").all()
    out: dict[str, list[str]] = {}
    for iid, status in rows:
        out.setdefault(iid, []).append(status)
    return {iid: sorted(s, key=["batched", "approved", "sent"].index) for iid, s in out.items()}


def test_the_newest_verified_unrevoked_account_is_the_one_paid():
    def acc(number: str, at: str, revoked: bool = False) -> Account:
        return Account("P", "n", number, BANK, at, revoked)

    assert current_accounts([acc("11111111", "2026-01"), acc("22222222", "2026-02")])["P"].account_number == "22222222"
    # the newer account revoked: the older one is paid again
    assert current_accounts([acc("11111111", "2026-01"), acc("22222222", "2026-02"), acc("22222222", "2026-03", True)])["P"].account_number == "11111111"
    # a revocation as new as the verification wins; a later verification brings the account back
    assert current_accounts([acc("11111111", "2026-01"), acc("11111111", "2026-01", True)]) == {}
    assert current_accounts([acc("11111111", "2026-01"), acc("11111111", "2026-02", True), acc("11111111", "2026-03")])["P"].verified_at == "2026-03"


def test_a_batch_from_proposal_to_sent(ledger_url):
    """On SQLite and PostgreSQL: batched, approved by another person, sent; the chain holds each step."""
    out = run(EVENTS)
    payments = {i.instruction_id: i for i in out.instructions if i.kind == "payment"}
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, [])
        assert ledger.import_payee_accounts([account(PAID)]) == (1, 0)
        assert ledger.import_payee_accounts([account(PAID)]) == (0, 1)  # a repeat is a no-op
        assert [a.payee_id for a in ledger.awaiting_account()] == [UNKNOWN]

        proposal = ledger.propose_batch("alice")
        # 600.00 + 1,500.30 less the clawback of 300.00 the payee owes back (netted: sinks/ledger/receivables.py)
        assert (proposal.batch_id, proposal.number_of_transactions, proposal.control_sum_fen, proposal.approvals_required) == ("PB000001", 2, 180030, 1)
        assert [(a.payee_id, a.payments, a.amount_fen) for a in proposal.awaiting] == [(UNKNOWN, 1, 6000)]
        assert (proposal.clawbacks, proposal.clawbacks_fen, proposal.offsets, proposal.offsets_fen) == (1, -30000, 1, 30000)  # never batched: netted
        with pytest.raises(PaymentRefused, match="nothing to batch.*1 payment.*awaiting an account"):
            ledger.propose_batch("alice")  # what was batched is not batched again

        with pytest.raises(PaymentRefused, match="alice proposed batch PB000001 and may not approve it"):
            ledger.approve_batch("PB000001", "alice")
        with pytest.raises(PaymentRefused, match="is not approved"):
            ledger.mark_sent("PB000001", "carol")
        assert ledger.approve_batch("PB000001", "bob").status == "approved"
        with pytest.raises(PaymentRefused, match=r"already approved \(approved by bob\)"):
            ledger.approve_batch("PB000001", "bob")

        # the pipeline goes on booking between the payments' steps: one chain, one sequence
        late = run([*EVENTS, purchase("e4", 4, "10.00")])
        ledger.record(late.decisions, late.instructions, [])
        assert ledger.mark_sent("PB000001", "carol") is True
        assert ledger.mark_sent("PB000001", "carol") is False
        state, items = ledger.batch_contents("PB000001")
        assert state.status == "sent" and {i.instruction_id for i in items} == {iid for iid, i in payments.items() if i.payee.id == PAID}
        assert all(s == ["batched", "approved", "sent"] for s in statuses(ledger).values()) and len(statuses(ledger)) == 2
        assert ledger.verify_chain() == []
        with ledger.engine.connect() as conn:
            kinds = conn.exec_driver_sql("SELECT seq, kind FROM ledger_chain_events ORDER BY seq").all()
            journal = [seq for (seq,) in conn.exec_driver_sql("SELECT seq FROM ledger_journal")]
            offsets = [seq for (seq,) in conn.exec_driver_sql("SELECT seq FROM ledger_offsets")]
            facts = [seq for (seq,) in conn.exec_driver_sql("SELECT seq FROM ledger_chain_facts")]  # the booked batches' decisions
        assert [k for _, k in kinds] == ["batch-proposed", "batch-approved", "batch-sent"]
        assert sorted(journal + offsets + facts + [s for s, _ in kinds]) == list(range(1, len(journal) + len(facts) + 5))


@pytest.fixture
def sqlite_ledger(tmp_path):
    out = run(EVENTS)
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, [])
        ledger.import_payee_accounts([account(PAID), account(UNKNOWN, "6222000000000001")])
        yield ledger


def test_a_batch_over_the_amount_needs_two_approvers_neither_the_maker(sqlite_ledger):
    proposal = sqlite_ledger.propose_batch("alice", dual_approval_above_fen=100_00)
    assert proposal.approvals_required == 2
    state = sqlite_ledger.approve_batch(proposal.batch_id, "bob")
    assert (state.status, state.approvers) == ("proposed", ["bob"])
    assert statuses(sqlite_ledger) and all(s == ["batched"] for s in statuses(sqlite_ledger).values())
    with pytest.raises(PaymentRefused, match="already approved"):
        sqlite_ledger.approve_batch(proposal.batch_id, "bob")
    with pytest.raises(PaymentRefused, match="may not approve"):
        sqlite_ledger.approve_batch(proposal.batch_id, "alice")
    assert sqlite_ledger.approve_batch(proposal.batch_id, "carol").status == "approved"
    assert all(s == ["batched", "approved"] for s in statuses(sqlite_ledger).values())


def test_clause_and_until_select_the_payments(sqlite_ledger):
    with pytest.raises(PaymentRefused, match="nothing to batch: no unbatched payment of model-usage"):
        sqlite_ledger.propose_batch("alice", clause_id="model-usage")
    with pytest.raises(PaymentRefused, match="up to 2026-03-09"):
        sqlite_ledger.propose_batch("alice", until="2026-03-09")
    assert sqlite_ledger.propose_batch("alice", clause_id="compute-voucher", until="2026-03-10").number_of_transactions == 3


def test_an_item_or_a_batch_edited_behind_the_ledger_is_found(sqlite_ledger):
    proposal = sqlite_ledger.propose_batch("alice")
    sqlite_ledger.approve_batch(proposal.batch_id, "bob")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with sqlite_ledger.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE ledger_batch_items SET account_number = '9999999999'")
    with sqlite_ledger.engine.begin() as conn:
        for table in ("ledger_batch_items", "ledger_batches", "ledger_approvals"):
            conn.exec_driver_sql(f"DROP TRIGGER {table}_no_update")
            conn.exec_driver_sql(f"DROP TRIGGER {table}_no_delete")
        conn.exec_driver_sql("UPDATE ledger_batch_items SET account_number = '9999999999' WHERE rowid = 1")
        conn.exec_driver_sql("UPDATE ledger_batches SET approvals_required = 1, maker = 'mallory'")
        conn.exec_driver_sql("DELETE FROM ledger_approvals")
    problems = sqlite_ledger.verify_chain()
    assert any("an item was edited" in p for p in problems), problems
    assert any("its row differs" in p for p in problems), problems
    assert any("approval by bob is missing" in p for p in problems), problems


def test_the_payment_file_a_bank_can_execute(sqlite_ledger):
    proposal = sqlite_ledger.propose_batch("alice")
    sqlite_ledger.approve_batch(proposal.batch_id, "bob")
    state, items = sqlite_ledger.batch_contents(proposal.batch_id)
    data = batch_pain001(state, items, created_at="2026-05-01T08:00:00+08:00", execution_date="2026-05-02", debtor_bank="011651000018")
    pain001_schema().validate(io.BytesIO(data))  # the other validator agrees
    ns = {"p": PAIN001_NS}
    root = ET.fromstring(data)
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=ns) == proposal.batch_id
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=ns) == "3"
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=ns) == "1860.30"  # the clawback of 300.00 netted
    for pmt in root.iterfind(".//p:PmtInf", ns):
        amounts = [e.text for e in pmt.iterfind("p:CdtTrfTxInf/p:Amt/p:InstdAmt", ns)]
        assert pmt.findtext("p:NbOfTxs", namespaces=ns) == str(len(amounts))
        assert pmt.findtext("p:CtrlSum", namespaces=ns) == format_fen(sum(parse_amount(a) for a in amounts))
    assert root.findtext(".//p:DbtrAgt/p:FinInstnId/p:ClrSysMmbId/p:MmbId", namespaces=ns) == "011651000018"
    by_id = {i.instruction_id: i for i in items}
    for tx in root.iterfind(".//p:CdtTrfTxInf", ns):
        e2e = tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns)
        item = by_id[e2e]  # the instruction id itself: one to one
        assert len(e2e) == 32
        assert tx.findtext("p:CdtrAcct/p:Id/p:Othr/p:Id", namespaces=ns) == item.account_number
        assert tx.findtext("p:CdtrAgt/p:FinInstnId/p:ClrSysMmbId/p:ClrSysId/p:Cd", namespaces=ns) == "CNAPS"
        assert tx.findtext("p:CdtrAgt/p:FinInstnId/p:ClrSysMmbId/p:MmbId", namespaces=ns) == BANK
        assert tx.findtext("p:Cdtr/p:Nm", namespaces=ns) == item.account_name
        assert not tx.findtext("p:Amt/p:InstdAmt", namespaces=ns).startswith("-")


def test_the_payment_file_refuses_what_it_cannot_hold(sqlite_ledger):
    proposal = sqlite_ledger.propose_batch("alice")
    state, items = sqlite_ledger.batch_contents(proposal.batch_id)
    with pytest.raises(ValueError, match="differ from its control totals"):
        batch_pain001(state, items[1:], created_at="2026-05-01T08:00:00+08:00", execution_date="2026-05-02")
    long_name = [dataclasses.replace(items[0], account_name="<&>" * 100), *items[1:]]
    data = batch_pain001(state, long_name, created_at="2026-05-01T08:00:00+08:00", execution_date="2026-05-02")
    assert b"&lt;&amp;&gt;" in data  # escaped, cut to the XSD's lengths, and still valid


def test_a_payment_file_the_xsd_refuses_is_not_written(sqlite_ledger, monkeypatch):
    import sinks.export

    proposal = sqlite_ledger.propose_batch("alice")
    state, items = sqlite_ledger.batch_contents(proposal.batch_id)
    monkeypatch.setattr(sinks.export, "_CLEARING_SYSTEM", "CNAPS-CN")  # the XSD allows 5 characters
    with pytest.raises(ValueError, match="does not validate against pain.001.001.09.xsd"):
        batch_pain001(state, items, created_at="2026-05-01T08:00:00+08:00", execution_date="2026-05-02")


def test_a_held_payment_is_not_batched_until_released(sqlite_ledger):
    import datetime as dt

    from rules.exclusions import Listing

    payment = next(i.to_wire() for i in run(EVENTS).instructions if i.kind == "payment" and i.payee.id == UNKNOWN)
    listing = Listing(UNKNOWN, "dishonest-judgment-debtor", "（2026）川01执1234号", dt.date(2026, 3, 1), None, "credit", "x1", "2026-03-01T00:00:00+08:00")
    sqlite_ledger.hold(payment["instruction_id"], listing, dt.date(2026, 3, 10))
    proposal = sqlite_ledger.propose_batch("alice")
    assert (proposal.number_of_transactions, proposal.held) == (2, 1)
    sqlite_ledger.release(payment["instruction_id"], dt.date(2026, 3, 11))
    later = sqlite_ledger.propose_batch("alice")  # released on a day past: paid by the next batch
    assert (later.number_of_transactions, later.held) == (1, 0)
    assert sqlite_ledger.batch_contents(later.batch_id)[1][0].instruction_id == payment["instruction_id"]


def test_a_payee_listed_today_is_not_batched_though_no_hold_was_recorded(sqlite_ledger):
    """A listing that began after the claim's day holds nothing (the holds follow the claim's day,
    as a replay does); the batch still leaves the listed payee out while the listing lasts."""
    import datetime as dt

    from rules.exclusions import Listing

    today = dt.date.today()
    since_yesterday = Listing(UNKNOWN, "debarred", "川财采〔2026〕7号", today - dt.timedelta(days=1), None, "credit", "x2", "2026-12-01T00:00:00+08:00")
    sqlite_ledger.record([], [], [], listings=[since_yesterday])
    assert sqlite_ledger.holds() == []
    proposal = sqlite_ledger.propose_batch("alice")
    assert (proposal.number_of_transactions, proposal.held) == (2, 1)
    assert UNKNOWN not in {item.payee_id for item in sqlite_ledger.batch_contents(proposal.batch_id)[1]}
    ended = dataclasses.replace(since_yesterday, ends=today - dt.timedelta(days=1), occurred_at="2026-12-02T00:00:00+08:00", event_id="x3")
    sqlite_ledger.record([], [], [], listings=[ended])  # the newest message about the listing: it ended yesterday
    assert sqlite_ledger.propose_batch("alice").number_of_transactions == 1


def test_a_batch_or_an_approval_added_behind_the_ledger_is_found(sqlite_ledger):
    proposal = sqlite_ledger.propose_batch("alice")
    with sqlite_ledger.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO ledger_approvals VALUES (?, 'mallory', '2026-05-01T00:00:00+00:00')", (proposal.batch_id,))
        conn.exec_driver_sql("INSERT INTO ledger_batches SELECT 'PB000099', maker, proposed_at, clause_id, until_date, number_of_transactions, "
                             "control_sum_fen, approvals_required, items_hash FROM ledger_batches")
    problems = sqlite_ledger.verify_chain()
    assert "batch PB000099 has no proposal in the hash chain: it was added" in problems
    assert f"the approval of batch {proposal.batch_id} by mallory is not in the hash chain: it was added" in problems
