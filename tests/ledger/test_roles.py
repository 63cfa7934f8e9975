"""Least privilege on PostgreSQL (sinks/ledger/roles.py): after `subsidy ledger init`, the writer
books through `Ledger` but cannot change or remove what is booked, nor the tables and their
triggers; the reader cannot write at all. (SQLite has no roles.)"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import uuid

import pytest
import sqlalchemy as sa

from bench.common import fresh_database
from rules.exclusions import Listing
from sinks.cli import main as ledger_main
from sinks.ledger import Ledger
from sinks.ledger.roles import LedgerRoles
from tests.ledger.factory import TIMEZONE, purchase, run

pytestmark = pytest.mark.integration

PASSWORDS = {"migrator": "m-secret-4711", "writer": "w-secret-4711", "reader": "r-secret-4711"}
INSUFFICIENT_PRIVILEGE = "42501"


@pytest.fixture(scope="module")
def initialised(postgres_url):
    """A ledger made the old way (by the superuser, no roles), then `ledger init` with roles of
    names unique to the module (roles belong to the whole cluster); yields its URL as each role.
    The tests refused a statement roll back: they share it."""
    suffix = uuid.uuid4().hex[:8]
    roles = LedgerRoles(f"migrator_{suffix}", f"writer_{suffix}", f"reader_{suffix}")
    try:
        with fresh_database(postgres_url, prefix="roles") as url, pytest.MonkeyPatch.context() as env:
            for job, password in PASSWORDS.items():
                env.setenv(f"SUBSIDY_{job.upper()}_PASSWORD", password)
            Ledger.open(url).close()
            init = ["ledger", "init", "--ledger", url, "--migrator-role", roles.migrator, "--writer-role", roles.writer, "--reader-role", roles.reader]
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                assert ledger_main(init) == 0
                assert ledger_main(init) == 0, "init runs again on its own ledger"
            assert roles.writer in printed.getvalue()
            assert not any(password in printed.getvalue() for password in PASSWORDS.values())
            as_role = {job: sa.make_url(url).set(username=name, password=PASSWORDS[job]).render_as_string(hide_password=False)
                       for job, name in roles.by_job().items()}
            yield {"superuser": url, **as_role, "roles": roles}
    finally:
        admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in roles.by_job().values():
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{name}"')
        admin.dispose()


def refused(url: str, statement: str, *, read_write: bool = False) -> str:
    """The SQLSTATE the database answers ``statement`` with (fails when it is accepted)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if read_write:  # the reader's sessions are read-only by default: prove the grants too
                conn.exec_driver_sql("SET default_transaction_read_only = off")
                conn.commit()
            try:
                conn.exec_driver_sql(statement)
            except sa.exc.DBAPIError as error:
                conn.rollback()
                return str(error.orig.sqlstate)
            conn.rollback()
            pytest.fail(f"accepted: {statement}")
    finally:
        engine.dispose()


def test_the_writer_books_through_the_ledger(initialised):
    state: dict = {}
    first = run([purchase("e1", 1, "1000.00"), purchase("e2", 2, "500.00")], state)
    second = run([purchase("e3", 1, "200.00"), purchase("e4", 1, "-100.00", refund_of="e1")], state)
    with Ledger.open(initialised["writer"], timezone=TIMEZONE) as ledger:
        assert ledger.record(first.decisions, first.instructions, first.rejections).new_instructions == 2
        assert ledger.record(second.decisions, second.instructions, second.rejections).new_instructions == 2  # cap usage moved back and forth
        assert ledger.record(first.decisions, first.instructions, first.rejections).new == 0  # a repeat stays a no-op
        payment = second.instructions[0].to_wire()
        listing = Listing(payment["payee"]["id"], "debarred", "R-1", dt.date(2026, 3, 1), None, "registry", "x1", "2026-03-01T09:00:00+08:00")
        assert ledger.hold(payment["instruction_id"], listing, dt.date(2026, 3, 10))
        assert ledger.release(payment["instruction_id"], dt.date(2026, 4, 1))
        assert ledger.verify_chain() == []
    with Ledger.open(initialised["reader"]) as ledger:
        assert ledger.counts()["instructions"] == 4


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_journal SET amount_fen = amount_fen + 100",
    "UPDATE ledger_decisions SET body = '{}'",
    "UPDATE ledger_accounts SET name = 'x'",
    "UPDATE ledger_cap_usage SET scope = 'x'",  # it moves the usage counters, not their keys
    "DELETE FROM ledger_rejections",
    "DELETE FROM ledger_holds",
    "UPDATE ledger_hold_releases SET released_on = '2026-01-01'",
    "DELETE FROM ledger_cap_usage",
    "DELETE FROM ledger_chain_head",
    "TRUNCATE ledger_journal",
    "TRUNCATE ledger_cap_usage",
    "ALTER TABLE ledger_journal ADD COLUMN note text",
    "ALTER TABLE ledger_journal DISABLE TRIGGER ALL",
    "ALTER TABLE ledger_journal DISABLE TRIGGER ledger_journal_append_only",
    "DROP TRIGGER ledger_decisions_append_only ON ledger_decisions",
    "DROP TABLE operator_actions",
    "CREATE TABLE ledger_shadow (x int)",
    "INSERT INTO console_users (name, role, password_hash, created_at) VALUES ('eve', 'admin', 'x', 'now')",
    "UPDATE ledger_alembic_version SET version_num = 'x'",
])
def test_the_writer_cannot_change_what_is_booked(initialised, statement):
    assert refused(initialised["writer"], statement) == INSUFFICIENT_PRIVILEGE


@pytest.mark.parametrize("statement", [
    "INSERT INTO ledger_rejections (rejection_id, content_hash, body, recorded_at) VALUES ('r', 'h', '{}', 'now')",
    "INSERT INTO operator_actions (action_id, user_name, role, action, subject, reason, recorded_at) VALUES ('a', 'u', 'admin', 'hold', 's', 'r', 'now')",
    "UPDATE ledger_chain_head SET seq = 0",
    "UPDATE ledger_cap_usage SET used = 0",
    "DELETE FROM ledger_journal",
    "TRUNCATE ledger_decisions",
    "ALTER TABLE ledger_journal DISABLE TRIGGER ALL",
])
def test_the_reader_cannot_write(initialised, statement):
    assert refused(initialised["reader"], statement, read_write=True) == INSUFFICIENT_PRIVILEGE


def test_the_migrator_owns_the_tables_and_reading_commands_use_the_reader(initialised, monkeypatch, capsys):
    roles = initialised["roles"]
    engine = sa.create_engine(initialised["superuser"])
    try:
        with engine.connect() as conn:
            owners = dict(conn.exec_driver_sql("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'").all())
            stored = dict(conn.execute(sa.text("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(:names)"), {"names": list(roles.by_job().values())}).all())
    finally:
        engine.dispose()
    assert set(owners.values()) == {roles.migrator}
    assert all(password.startswith("SCRAM-SHA-256$") for password in stored.values()) and len(stored) == 3
    assert "ledger_journal" in owners and "ledger_alembic_version" in owners
    monkeypatch.setenv("SUBSIDY_LEDGER_URL", "sqlite:////nonexistent/ledger.sqlite")
    monkeypatch.setenv("SUBSIDY_LEDGER_READER_URL", initialised["reader"])
    assert ledger_main(["ledger", "balance", "--json"]) == 0
    assert "accounts" in json.loads(capsys.readouterr().out)


def test_the_console_reads_as_the_reader_and_records_as_the_writer(initialised):
    """The console's grants suffice: its pages as the reader, an operator's hold (in the hash
    chain) and a checker's batch approval as the writer; a NUL in a filter is a bad request on
    PostgreSQL too, not an outage."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from console.app import build_console
    from console.users import add_user
    from parties import uscc  # the factory's provider, whom compute vouchers pay
    from sinks.ledger import make_engine
    from sinks.ledger.schema import accounts

    state: dict = {}
    batch = run([purchase("c1", 7, "300.00")], state)
    with Ledger.open(initialised["writer"], timezone=TIMEZONE) as ledger:
        ledger.record(batch.decisions, batch.instructions, batch.rejections)
        ledger.import_payee_accounts([{"source": "registry", "event_id": "a1", "payee_id": uscc(9_000_000), "account_name": "收款方",
                                       "account_number": "6222021001012345678", "bank_code": "102651020012", "verified_at": "2026-01-01T00:00:00+00:00", "revoked": False}])
        proposed = ledger.propose_batch("mark").batch_id
    engine = make_engine(initialised["superuser"])
    try:
        add_user(engine, "mark", "maker", "correct horse battery")
        add_user(engine, "chen", "checker", "correct horse battery")
        with engine.connect() as conn:
            payee = conn.execute(sa.select(accounts.c.payee_id).where(accounts.c.payee_id.is_not(None)).limit(1)).scalar_one()
    finally:
        engine.dispose()

    async def work():
        async with TestClient(TestServer(build_console(initialised["reader"], writer_url=initialised["writer"]))) as client:
            csrf = (await (await client.post("/api/login", json={"name": "mark", "password": "correct horse battery"})).json())["csrf"]
            held = await client.post("/api/holds", json={"payee_id": payee, "reason": "review"}, headers={"X-CSRF-Token": csrf})
            nul = await client.get("/api/decisions/recent?clause=%00")
            csrf = (await (await client.post("/api/login", json={"name": "chen", "password": "correct horse battery"})).json())["csrf"]
            approved = await client.post(f"/api/batches/{proposed}/approve", headers={"X-CSRF-Token": csrf})
            return (held.status, (await client.get("/api/holds")).status, nul.status, (await client.get("/api/summary")).status,
                    approved.status, (await approved.json()).get("status"))

    assert asyncio.run(work()) == (200, 200, 400, 200, 200, "approved")
    with Ledger.open(initialised["superuser"], timezone=TIMEZONE) as ledger:
        assert ledger.verify_chain() == []


@pytest.mark.parametrize("names", [("m_same", "w_same", "w_same"), ("m_self", "postgres", "r_self")])
def test_init_refuses_roles_that_are_one_or_the_user_running_it(postgres_url, names, capsys):
    user = sa.make_url(postgres_url).username
    migrator, writer, reader = (user if name == "postgres" else name for name in names)
    code = ledger_main(["ledger", "init", "--ledger", postgres_url, "--migrator-role", migrator, "--writer-role", writer, "--reader-role", reader])
    error = capsys.readouterr().err
    assert code == 2 and len(error.strip().splitlines()) == 1
    assert "must be three roles" in error or "runs `ledger init`" in error
