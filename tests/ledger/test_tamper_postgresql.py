"""Issue 27's tamper path on PostgreSQL: a superuser switches the append-only triggers off
(``ALTER TABLE ... DISABLE TRIGGER ALL``), edits, switches them on again; `subsidy ledger verify`
names every change. The rest of the table, row by row: test_tamper.py (SQLite)."""

from __future__ import annotations

import pytest

from bench.common import fresh_database
from sinks.cli import main as ledger_main
from tests.ledger.test_tamper import Booked

pytestmark = pytest.mark.integration


def test_a_superuser_with_the_triggers_disabled_is_found(postgres_url, tmp_path, capsys):
    with fresh_database(postgres_url, prefix="tamper") as url:
        booked = Booked(tmp_path, url)
        try:
            decision = booked.payment.instruction_id
            with booked.ledger.engine.begin() as conn:
                for table in ("ledger_decisions", "ledger_rejections", "ledger_journal"):
                    conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
                conn.exec_driver_sql("UPDATE ledger_decisions SET body = REPLACE(body, '\"granted\":\"5000000.00\"', '\"granted\":\"9000000.00\"'), "
                                     f"granted_fen = 900000000 WHERE instruction_id = '{decision}'")
                conn.exec_driver_sql("DELETE FROM ledger_rejections")
                conn.exec_driver_sql("UPDATE ledger_journal SET amount_fen = amount_fen + 100 WHERE seq = 1")
                for table in ("ledger_decisions", "ledger_rejections", "ledger_journal"):
                    conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
            code = ledger_main(["ledger", "verify", "--ledger", url, "--checkpoints", str(booked.checkpoints_file), "--public-key", f"{booked.key_path}.pub"])
            out = capsys.readouterr().out
        finally:
            booked.ledger.close()
        assert code == 1
        assert "journal seq 1 (instruction" in out and "entry hash mismatch" in out
        assert "ledger_decisions " in out and "content hash (of its body) expected" in out
        assert "count expected 1, found 0: a row was removed" in out
