"""Least privilege on PostgreSQL: who migrates the ledger, who appends to it, who reads it.

``subsidy ledger init``, run once by a superuser, creates three login roles and grants each what
its job needs and nothing else:

* the migrator owns the ledger's tables (the migrations run as it: DDL, triggers);
* the writer (workers, the console's operator actions) may SELECT every table and INSERT where
  booking, payment holds, payments and operators' actions append (:data:`WRITER_INSERTS`); it UPDATEs only the chain head and the cap usage
  counters (:data:`WRITER_UPDATES`), which ``sinks/ledger/booking.py`` moves on each batch. Not
  being an owner, it cannot ALTER a table nor disable a trigger; it has no DELETE nor TRUNCATE;
* the reader (the console's pages, exports, balances) may only SELECT.

A table not named below (a later migration's) is readable by both and writable by neither until
it is named here. SQLite has no roles: a SQLite ledger is protected by its file's permissions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sinks.ledger.database import LedgerError
from sinks.ledger.schema import (
    accounts,
    approvals,
    bank_answers,
    batch_items,
    batches,
    cap_charges,
    cap_usage,
    chain_events,
    chain_facts,
    chain_head,
    decisions_t,
    exclusion_listings,
    hold_releases,
    holds_t,
    instructions_t,
    journal,
    metadata,
    offsets,
    operator_actions,
    payee_accounts,
    payment_events,
    payment_postings,
    payment_voids,
    rejections_t,
)

VERSION_TABLE = "ledger_alembic_version"
WRITER_INSERTS = (decisions_t, instructions_t, rejections_t, journal, cap_charges, accounts, cap_usage, holds_t, hold_releases, operator_actions,
                  # finance's payments (subsidy payees, subsidy payments), each step a new row
                  payee_accounts, batches, batch_items, approvals, payment_events, chain_events,
                  # payee-exclusions listings, booked by intake with the holds they call for
                  exclusion_listings,
                  # clawbacks netted when a batch is proposed (sinks/ledger/receivables.py)
                  offsets,
                  # the bank's answers, settlements, returns and voids (subsidy payments ingest, void)
                  bank_answers, payment_postings, payment_voids,
                  # the chain entries of every other fact (sinks/ledger/chain.py)
                  chain_facts)
WRITER_UPDATES = {chain_head: ("seq", "head_hash"), cap_usage: ("used", "cap_limit")}
APPEND_ONLY_FUNCTION = "ledger_append_only()"


@dataclass(frozen=True, slots=True)
class LedgerRoles:
    migrator: str = "subsidy_migrator"
    writer: str = "subsidy_writer"
    reader: str = "subsidy_reader"

    def by_job(self) -> dict[str, str]:
        return {"migrator": self.migrator, "writer": self.writer, "reader": self.reader}


def password_variable(job: str) -> str:
    """``SUBSIDY_WRITER_PASSWORD`` for the writer; ``..._FILE`` names a file holding it instead."""
    return f"SUBSIDY_{job.upper()}_PASSWORD"


def password_from_environment(job: str) -> str | None:
    """The role's password from $SUBSIDY_<JOB>_PASSWORD, else from the file $SUBSIDY_<JOB>_PASSWORD_FILE
    names (its last newline dropped, as secrets mounted by docker or an editor end with one)."""
    variable = password_variable(job)
    if os.environ.get(variable):
        return os.environ[variable]
    path = os.environ.get(f"{variable}_FILE")
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise LedgerError(f"cannot read ${variable}_FILE {path}: {error.strerror}") from None
    password = text[:-1] if text.endswith("\n") else text
    if not password:
        raise LedgerError(f"${variable}_FILE {path} is empty")
    return password


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def _scram(conn: Connection, role: str, password: str) -> str:
    """The password as the server stores it (SCRAM-SHA-256), computed here: the plain text never
    reaches the server, so no statement log can hold it."""
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    encrypted: bytes = dbapi_connection.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return encrypted.decode("ascii")


def create_roles(conn: Connection, roles: LedgerRoles, passwords: dict[str, str | None]) -> None:
    """Create the roles that are missing, take every power beyond logging in from them (a role of
    that name made by hand may hold more), set the passwords given, and make the migrator the
    owner of the ledger's existing tables (a ledger made before its roles)."""
    if conn.dialect.name != "postgresql":
        raise LedgerError("roles exist on PostgreSQL only; a SQLite ledger is protected by its file's permissions")
    names = list(roles.by_job().values())
    if len(set(names)) < len(names):
        raise LedgerError(f"the migrator, writer and reader must be three roles, not {', '.join(names)}")
    myself = conn.exec_driver_sql("SELECT current_user").scalar_one()
    if myself in names:  # it would lose the powers init runs with
        raise LedgerError(f"{myself} runs `ledger init`: it cannot also be the migrator, the writer or the reader")
    existing = {name for (name,) in conn.exec_driver_sql("SELECT rolname FROM pg_roles")}
    for job, name in roles.by_job().items():
        verb = "ALTER" if name in existing else "CREATE"
        conn.exec_driver_sql(f"{verb} ROLE {_quote(conn, name)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS")
        password = passwords.get(job)
        if password:
            conn.exec_driver_sql(f"ALTER ROLE {_quote(conn, name)} PASSWORD '{_scram(conn, name, password)}'")
    migrator, writer, reader = (_quote(conn, name) for name in (roles.migrator, roles.writer, roles.reader))
    conn.exec_driver_sql(f"ALTER ROLE {reader} SET default_transaction_read_only = on")
    conn.exec_driver_sql(f"GRANT USAGE, CREATE ON SCHEMA {_quote(conn, _schema(conn))} TO {migrator}")
    # PostgreSQL before 15 let every role create tables in public: not the writer nor the reader
    conn.exec_driver_sql(f"REVOKE CREATE ON SCHEMA {_quote(conn, _schema(conn))} FROM PUBLIC")
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {_quote(conn, _schema(conn))} TO {writer}, {reader}")
    for table in _present(conn, [*metadata.tables, VERSION_TABLE]):
        conn.exec_driver_sql(f"ALTER TABLE {_quote(conn, table)} OWNER TO {migrator}")
    if conn.exec_driver_sql("SELECT to_regprocedure('ledger_append_only()') IS NOT NULL").scalar_one():
        conn.exec_driver_sql(f"ALTER FUNCTION {APPEND_ONLY_FUNCTION} OWNER TO {migrator}")


def grant_privileges(conn: Connection, roles: LedgerRoles) -> None:
    """Grant the writer and the reader what they need on the migrated tables, after revoking
    everything they held there: running it again puts right what was granted by hand."""
    writer, reader = _quote(conn, roles.writer), _quote(conn, roles.reader)
    tables = ", ".join(_quote(conn, name) for name in _present(conn, [*metadata.tables, VERSION_TABLE]))
    conn.exec_driver_sql(f"REVOKE ALL ON {tables} FROM PUBLIC, {writer}, {reader}")
    conn.exec_driver_sql(f"GRANT SELECT ON {tables} TO {writer}, {reader}")
    conn.exec_driver_sql(f"GRANT INSERT ON {', '.join(t.name for t in WRITER_INSERTS)} TO {writer}")
    for table, columns in WRITER_UPDATES.items():
        conn.exec_driver_sql(f"GRANT UPDATE ({', '.join(columns)}) ON {table.name} TO {writer}")


def _schema(conn: Connection) -> str:
    return str(conn.exec_driver_sql("SELECT current_schema()").scalar_one())


def _present(conn: Connection, names: list[str]) -> list[str]:
    query = sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename = ANY(:names) ORDER BY tablename")
    return [name for (name,) in conn.execute(query, {"names": names})]
