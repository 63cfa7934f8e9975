"""The ledger's tables: what booking writes, queries and verification read, and the console
reads. The schema itself is created by the Alembic migrations in ``sinks/migrations``."""

from __future__ import annotations

import sqlalchemy as sa

GENESIS_HASH = "0" * 64  # the chain head's hash before the first journal entry

metadata = sa.MetaData()
chain_head = sa.Table("ledger_chain_head", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("seq", sa.BigInteger), sa.Column("head_hash", sa.String))
accounts = sa.Table(
    "ledger_accounts",
    metadata,
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("kind", sa.String),
    sa.Column("policy_id", sa.String),
    sa.Column("clause_id", sa.String),
    sa.Column("fiscal_year", sa.Integer),
    sa.Column("payee_id", sa.String),
    sa.Column("payee_kind", sa.String),
    sa.Column("name", sa.String),
)
decisions_t = sa.Table(
    "ledger_decisions",
    metadata,
    sa.Column("decision_id", sa.String, primary_key=True),
    sa.Column("event_id", sa.String),
    sa.Column("source", sa.String),
    sa.Column("clause_id", sa.String),
    sa.Column("fiscal_year", sa.Integer),
    sa.Column("outcome", sa.String),
    sa.Column("granted_fen", sa.BigInteger),
    sa.Column("instruction_id", sa.String),
    sa.Column("content_hash", sa.String),
    sa.Column("body", sa.Text),
    sa.Column("recorded_at", sa.String),
)
instructions_t = sa.Table(
    "ledger_instructions",
    metadata,
    sa.Column("instruction_id", sa.String, primary_key=True),
    sa.Column("kind", sa.String),
    sa.Column("policy_id", sa.String),
    sa.Column("policy_version", sa.String),
    sa.Column("clause_id", sa.String),
    sa.Column("fiscal_year", sa.Integer),
    sa.Column("payee_id", sa.String),
    sa.Column("amount_fen", sa.BigInteger),
    sa.Column("currency", sa.String),
    sa.Column("corrects", sa.String),
    sa.Column("occurred_at", sa.String),
    sa.Column("value_date", sa.String),
    sa.Column("journal_seq", sa.BigInteger),
    sa.Column("content_hash", sa.String),
    sa.Column("body", sa.Text),
    sa.Column("recorded_at", sa.String),
)
rejections_t = sa.Table(
    "ledger_rejections",
    metadata,
    sa.Column("rejection_id", sa.String, primary_key=True),
    sa.Column("topic", sa.String),
    sa.Column("code", sa.String),
    sa.Column("content_hash", sa.String),
    sa.Column("body", sa.Text),
    sa.Column("recorded_at", sa.String),
)
journal = sa.Table(
    "ledger_journal",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("instruction_id", sa.String),
    sa.Column("entry_kind", sa.String),
    sa.Column("debit_account", sa.String),
    sa.Column("credit_account", sa.String),
    sa.Column("amount_fen", sa.BigInteger),
    sa.Column("clause_id", sa.String),
    sa.Column("fiscal_year", sa.Integer),
    sa.Column("payee_id", sa.String),
    sa.Column("instruction_hash", sa.String),
    sa.Column("prev_hash", sa.String),
    sa.Column("entry_hash", sa.String),
    sa.Column("recorded_at", sa.String),
)
cap_usage = sa.Table(
    "ledger_cap_usage",
    metadata,
    sa.Column("scope", sa.String, primary_key=True),
    sa.Column("kind", sa.String),
    sa.Column("cap_limit", sa.BigInteger),
    sa.Column("used", sa.BigInteger),
)
cap_charges = sa.Table(
    "ledger_cap_charges",
    metadata,
    sa.Column("instruction_id", sa.String, primary_key=True),
    sa.Column("scope", sa.String, primary_key=True),
    sa.Column("delta", sa.BigInteger),
)
