"""The console over a PostgreSQL ledger: same answers, and every connection is read-only."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from console.app import build_console
from console.readmodel import LedgerReader
from sinks.ledger import Ledger

pytestmark = pytest.mark.integration


def test_console_reads_a_postgresql_ledger_read_only(postgres_url, policy, tmp_path, console_helpers):
    events = tmp_path / "events.jsonl"
    console_helpers["generated_events"](events, policy, year=2026, seed=9, enterprises=40, events=600)
    console_helpers["fill_ledger"](postgres_url, events, policy, batch_lines=300)
    with Ledger.open(postgres_url, upgrade=False) as ledger:
        totals = ledger.granted_totals()
        counts = ledger.counts()

    async def work():
        async with TestClient(TestServer(build_console(postgres_url, policy))) as client:
            budgets = await (await client.get("/api/budgets")).json()
            summary = await (await client.get("/api/summary")).json()
            refused = (await client.delete("/api/budgets")).status
            return budgets, summary, refused

    budgets, summary, refused = asyncio.run(work())
    assert {(b["clause_id"], b["fiscal_year"]): b["granted_fen"] for b in budgets["budgets"] if b["series"]} == {(c, y): f for c, ys in totals.items() for y, f in ys.items()}
    assert summary["decisions"] == counts["decisions"] and refused == 401
    password = sa.make_url(postgres_url).password
    assert not password or password not in json.dumps(summary)  # the URL is shown without it

    reader = LedgerReader(postgres_url, policy)
    try:
        with reader.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW default_transaction_read_only").scalar() == "on"
            with pytest.raises(Exception, match="read-only transaction"):
                conn.exec_driver_sql("DELETE FROM ledger_rejections")
    finally:
        reader.close()
    with Ledger.open(postgres_url, upgrade=False) as ledger:
        assert ledger.counts() == counts
