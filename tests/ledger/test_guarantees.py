"""The guarantees the database gives on its own, behind the stream (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

from parties import uscc
from sinks.ledger import CapOverrun, Ledger, LedgerUnavailable, RetryPolicy, make_engine
from tests.ledger.factory import TIMEZONE, purchase, run

BUYER_CAP = json.dumps(["cap", "compute-voucher", "buyer-year", "2026", uscc(1)], ensure_ascii=False)


def test_duplicate_never_pays_twice(ledger_url):
    out = run([purchase("e1", 1, "1000.00"), purchase("e2", 2, "2000.00")])
    errors = []

    def writer():
        try:
            with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
                for _ in range(3):
                    ledger.record(out.decisions, out.instructions, [])
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        assert ledger.counts()["instructions"] == 2
        assert ledger.granted_totals() == {"compute-voucher": {2026: 180000}}
        # The unique key refuses a second row with the same id even when the code is bypassed.
        with pytest.raises(sa.exc.IntegrityError):
            with ledger.engine.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO ledger_instructions SELECT instruction_id, kind, policy_id, policy_version, clause_id, fiscal_year, payee_id, "
                    "amount_fen, currency, corrects, occurred_at, value_date, journal_seq + 100, content_hash, body, recorded_at FROM ledger_instructions"
                )


def test_database_refuses_cap_overrun_directly(ledger_url):
    out = run([purchase("e1", 1, "1000.00")])
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, [])
        with pytest.raises(sa.exc.IntegrityError):
            with ledger.engine.begin() as conn:
                conn.exec_driver_sql("UPDATE ledger_cap_usage SET used = cap_limit + 1")
        assert ledger.cap_usage()[BUYER_CAP]["used"] == 60000


def test_concurrent_writers_cannot_overrun_a_cap(ledger_url):
    """Four stream instances with split state each believe the buyer's 5,000,000 cap has room."""
    Ledger.open(ledger_url, timezone=TIMEZONE).close()
    writers = 4
    streams = [run([purchase(f"w{w}-{n}", 1, "3000000.00") for n in range(3)]) for w in range(writers)]
    refused = []
    barrier = threading.Barrier(writers)

    def writer(out):
        with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
            barrier.wait()
            for instruction in out.instructions:
                try:
                    ledger.record([], [instruction], [])
                except CapOverrun as error:
                    refused.append(str(error))

    threads = [threading.Thread(target=writer, args=(s,)) for s in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        usage = ledger.cap_usage()[BUYER_CAP]
        assert usage["used"] <= usage["limit"] == 500_000_000
        assert ledger.granted_totals()["compute-voucher"][2026] == usage["used"]
        assert refused and all(BUYER_CAP in r for r in refused)
        assert ledger.verify_chain() == []


def test_clawback_releases_cap_room(ledger_url):
    out = run([purchase("e1", 1, "1000.00"), purchase("r1", 1, "1000.00", refund_of="e1")])
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, [])
        assert ledger.cap_usage()[BUYER_CAP]["used"] == 0
        assert ledger.granted_totals() == {"compute-voucher": {2026: 0}}
        balances = ledger.account_balances()
        assert set(balances.values()) == {0}


def test_hash_chain_detects_an_edited_row(ledger_url):
    out = run([purchase(f"e{n}", n, "1000.00") for n in range(1, 5)])
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, [])
        assert ledger.verify_chain() == []
        # First line: the triggers refuse updates and deletes.
        for statement in ("UPDATE ledger_journal SET amount_fen = amount_fen + 1 WHERE seq = 2", "DELETE FROM ledger_journal WHERE seq = 4"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                with ledger.engine.begin() as conn:
                    conn.exec_driver_sql(statement)
        # Someone with DDL rights switches the triggers off and edits rows: the chain tells.
        with ledger.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("ALTER TABLE ledger_journal DISABLE TRIGGER USER")
                conn.exec_driver_sql("ALTER TABLE ledger_instructions DISABLE TRIGGER USER")
            else:
                conn.exec_driver_sql("DROP TRIGGER ledger_journal_no_update")
                conn.exec_driver_sql("DROP TRIGGER ledger_instructions_no_update")
            conn.exec_driver_sql("UPDATE ledger_journal SET amount_fen = amount_fen + 1 WHERE seq = 2")
            conn.exec_driver_sql("UPDATE ledger_instructions SET body = REPLACE(body, '\"600.00\"', '\"601.00\"') WHERE journal_seq = 3")
        problems = ledger.verify_chain()
        assert any("journal seq 2" in p and "edited" in p for p in problems), problems
        assert any("journal seq 3" in p for p in problems), problems


def test_restart_mid_batch_loses_nothing(ledger_url):
    """The sink's connection dies in the middle of a batch (PostgreSQL: pg_terminate_backend from
    another connection; SQLite: the write fails with an OperationalError); the retry writes
    everything exactly once. The batch is written a table at a time, so the connection dies when
    the chain head is about to move: every row of the batch is already sent, none committed."""
    out = run([purchase(f"e{n}", n, "1000.00") for n in range(1, 21)])
    ledger = Ledger.open(ledger_url, timezone=TIMEZONE, retry=RetryPolicy(attempts=5, initial_delay=0.05))
    journal_inserts = {"n": 0, "killed": False}
    admin = sa.create_engine(ledger_url, isolation_level="AUTOCOMMIT") if ledger.dialect == "postgresql" else None

    @sa.event.listens_for(ledger.engine, "before_cursor_execute")
    def kill_mid_batch(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE ledger_chain_head"):
            journal_inserts["n"] += 1
            if journal_inserts["n"] == 1 and not journal_inserts["killed"]:
                journal_inserts["killed"] = True
                if admin is not None:
                    pid = conn.connection.dbapi_connection.info.backend_pid
                    with admin.connect() as other:
                        assert other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
                else:
                    import sqlite3

                    raise sqlite3.OperationalError("disk I/O error (simulated)")

    try:
        result = ledger.record(out.decisions, out.instructions, [])
        assert journal_inserts["killed"] and result.attempts == 2
        assert result.new_instructions == 20 and result.new_decisions == 20
        assert ledger.counts() == {"decisions": 20, "instructions": 20, "rejections": 0}
        assert ledger.granted_totals() == {"compute-voucher": {2026: 20 * 60000}}
        assert ledger.verify_chain() == []
        assert [e["seq"] for e in ledger.journal_entries()] == list(range(1, 21))
    finally:
        ledger.close()
        if admin is not None:
            admin.dispose()


@pytest.mark.integration
def test_database_down_raises_unavailable_after_bounded_retries():
    """Nothing listens on port 1: record() retries a bounded number of times, then says so."""
    ledger = Ledger(make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none"), RetryPolicy(attempts=3, initial_delay=0.01), timezone=TIMEZONE)
    out = run([purchase("e1", 1, "1000.00")])
    with pytest.raises(LedgerUnavailable, match="after 3 attempt"):
        ledger.record(out.decisions, out.instructions, [])
    ledger.close()
