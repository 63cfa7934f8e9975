"""A batch is booked with a few statements per table: it must store exactly what booking its
instructions one at a time stores, and refuse exactly what that refuses (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections import namedtuple

import pytest
import sqlalchemy as sa

from parties import uscc
from sinks.ledger import CapOverrun, InvalidRecord, Ledger, RetryPolicy
from tests.ledger.factory import TIMEZONE, purchase, run

CapRow = namedtuple("CapRow", "scope kind cap_limit used")
BUYER_CAP = json.dumps(["cap", "compute-voucher", "buyer-year", "2026", uscc(1)], ensure_ascii=False)


def mixed():
    """Payments of several buyers, refunds (clawbacks) of some of them, two fiscal years."""
    messages = [purchase(f"e{n}", n % 4 + 1, f"{100 * n}.00") for n in range(1, 13)]
    messages += [purchase(f"r{n}", n % 4 + 1, f"{50 * n}.00", refund_of=f"e{n}") for n in (2, 5, 7)]
    messages += [purchase("old", 2, "300.00", when="2025-12-31T23:30:00+08:00"), purchase("r5b", 5 % 4 + 1, f"{50 * 5}.00", refund_of="e5")]
    return run(messages)


def stored(ledger: Ledger) -> dict:
    """What a ledger holds, without recorded_at and without places in the hash chain: each booked
    batch's fact (sinks/ledger/chain.py) takes one, so those differ between batchings."""
    with ledger.engine.connect() as conn:
        return {
            "journal": [row[1:10] for row in conn.exec_driver_sql("SELECT * FROM ledger_journal ORDER BY seq")],  # without seq, hashes, recorded_at
            "instructions": [row[:12] + row[13:-1] for row in conn.exec_driver_sql("SELECT * FROM ledger_instructions ORDER BY journal_seq")],  # without journal_seq
            "decisions": [row[:-2] for row in conn.exec_driver_sql("SELECT * FROM ledger_decisions ORDER BY decision_id")],  # without chain_seq
            "charges": list(conn.exec_driver_sql("SELECT instruction_id, scope, delta FROM ledger_cap_charges ORDER BY instruction_id, scope")),
            "caps": list(conn.exec_driver_sql("SELECT scope, kind, cap_limit, used FROM ledger_cap_usage ORDER BY scope")),
            "accounts": list(conn.exec_driver_sql("SELECT * FROM ledger_accounts ORDER BY account_id")),
        }


@pytest.fixture
def two_ledger_urls(ledger_url, tmp_path, request):
    """Two empty ledgers of the same backend."""
    if ledger_url.startswith("sqlite"):
        return ledger_url, f"sqlite:///{tmp_path / 'other.sqlite'}"
    base = sa.make_url(ledger_url)
    other = f"{base.database}_b"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{other}"')

    def drop():
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
        admin.dispose()

    request.addfinalizer(drop)
    return ledger_url, base.set(database=other).render_as_string(hide_password=False)


def test_one_batch_stores_what_one_at_a_time_stores(two_ledger_urls):
    out = mixed()
    assert sum(i.kind == "clawback" for i in out.instructions) == 4
    by_instruction = {d.instruction_id: d for d in out.decisions if d.instruction_id}
    single_url, batch_url = two_ledger_urls
    with Ledger.open(single_url, timezone=TIMEZONE) as single, Ledger.open(batch_url, timezone=TIMEZONE) as batch:
        for instruction in out.instructions:
            single.record([by_instruction[instruction.instruction_id]], [instruction], [])
        result = batch.record(out.decisions, out.instructions, [])
        assert result.new_instructions == len(out.instructions)
        assert stored(batch) == stored(single)
        assert batch.verify_chain() == [] and single.verify_chain() == []
        # and again, as a whole: nothing new
        assert batch.record(out.decisions, out.instructions, []).present_instructions == len(out.instructions)
        assert stored(batch) == stored(single)


def test_cap_overrun_inside_one_batch_names_the_same_instruction(two_ledger_urls):
    """Two stream instances with split state: together their payments overrun the buyer's cap."""
    a = run([purchase(f"a{n}", 1, "3000000.00") for n in range(3)])
    b = run([purchase(f"b{n}", 1, "3000000.00") for n in range(3)])
    instructions = a.instructions + b.instructions
    single_url, batch_url = two_ledger_urls
    with Ledger.open(single_url, timezone=TIMEZONE) as single, Ledger.open(batch_url, timezone=TIMEZONE) as batch:
        with pytest.raises(CapOverrun) as one_at_a_time:
            for instruction in instructions:
                single.record([], [instruction], [])
        with pytest.raises(CapOverrun) as batched:
            batch.record(a.decisions + b.decisions, instructions, [])
        assert str(batched.value) == str(one_at_a_time.value)
        assert BUYER_CAP in str(batched.value) and "would overrun" in str(batched.value)
        assert batch.counts() == {"decisions": 0, "instructions": 0, "rejections": 0}
        assert batch.cap_usage() == {} and batch.verify_chain() == []


def test_clawback_before_its_payment_in_the_batch_is_refused(ledger_url):
    out = run([purchase("e1", 1, "1000.00"), purchase("r1", 1, "400.00", refund_of="e1")])
    payment, clawback = out.instructions
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        with pytest.raises(InvalidRecord, match="not a payment in the ledger"):
            ledger.record([], [clawback, payment], [])
        assert ledger.counts()["instructions"] == 0
        ledger.record([], [payment, clawback], [])
        assert ledger.cap_usage()[BUYER_CAP]["used"] == 60000 - 24000


def test_check_constraint_is_the_last_line(ledger_url, monkeypatch):
    """Should the checks in Python miss an overrun, the database refuses it, and the error still
    names the instruction and the cap."""
    first = run([purchase("e1", 1, "3000000.00")])
    second = run([purchase("e2", 1, "6000000.00")])  # its own state: 5,000,000 of room
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(first.decisions, first.instructions, [])
        real = Ledger._select_in

        def blind(self, conn, table, columns, key, keys, **kw):
            rows = real(self, conn, table, columns, key, keys, **kw)
            if table.name == "ledger_cap_usage":  # the checks see empty caps
                return [CapRow(r.scope, r.kind, r.cap_limit, 0) for r in rows]
            return rows

        monkeypatch.setattr(Ledger, "_select_in", blind)
        with pytest.raises(CapOverrun) as refused:
            ledger.record(second.decisions, second.instructions, [])
        message = str(refused.value)
        assert second.instructions[0].instruction_id in message and BUYER_CAP in message and "database refused" in message
        monkeypatch.undo()
        assert ledger.counts()["instructions"] == 1
        assert ledger.cap_usage()[BUYER_CAP]["used"] == 180_000_000
        assert ledger.verify_chain() == []


def test_connection_lost_while_streaming_rows_is_retried(ledger_url, monkeypatch):
    """PostgreSQL: the backend is terminated just before the journal rows are sent (COPY outside
    SQLAlchemy's execute); SQLite: the journal insert fails. The batch is retried, stored once."""
    out = run([purchase(f"e{n}", n, "1000.00") for n in range(1, 21)])
    ledger = Ledger.open(ledger_url, timezone=TIMEZONE, retry=RetryPolicy(attempts=5, initial_delay=0.05))
    admin = sa.create_engine(ledger_url, isolation_level="AUTOCOMMIT") if ledger.dialect == "postgresql" else None
    real = Ledger._insert
    killed = []

    def insert(self, conn, table, names, rows):
        if table.name == "ledger_journal" and not killed:
            killed.append(table.name)
            if admin is not None:
                pid = conn.connection.dbapi_connection.info.backend_pid
                with admin.connect() as other:
                    assert other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
            else:
                import sqlite3

                raise sa.exc.OperationalError("INSERT INTO ledger_journal", None, sqlite3.OperationalError("disk I/O error (simulated)"))
        return real(self, conn, table, names, rows)

    monkeypatch.setattr(Ledger, "_insert", insert)
    try:
        result = ledger.record(out.decisions, out.instructions, [])
        assert killed and result.attempts == 2 and result.new_instructions == 20
        assert ledger.counts() == {"decisions": 20, "instructions": 20, "rejections": 0}
        assert ledger.verify_chain() == []
        assert [e["seq"] for e in ledger.journal_entries()] == list(range(1, 21))
    finally:
        ledger.close()
        if admin is not None:
            admin.dispose()
