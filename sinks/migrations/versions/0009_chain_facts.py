"""Every fact that decides money in the hash chain (issue 27): ``ledger_chain_facts`` holds a chain
entry per booked batch of decisions, rejections and exclusion listings, and per import of payee
accounts (the digest of their ids and content hashes) and, through the same function, any later
kind of fact; each such row names the chain entry that covers it (``chain_seq``). Rows stored
before this revision have none: one fact, appended here, covers them all (the forms are
sinks/ledger/chain.py's, written out: a migration is history and imports no definitions).

Revision ID: 0009_chain_facts
Revises: 0008_operator_actions_chained
Create Date: 2026-12-06
"""

import datetime as dt
import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0009_chain_facts"
down_revision = "0008_operator_actions_chained"
branch_labels = None
depends_on = None

TABLE = "ledger_chain_facts"
COVERED = ("ledger_decisions", "ledger_rejections", "ledger_exclusion_listings", "ledger_payee_accounts")


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),  # shares the journal's sequence
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("recorded_at", sa.String(40), nullable=False),
    )
    for table in COVERED:  # ADD COLUMN touches no row: the append-only triggers stay as they are
        op.add_column(table, sa.Column("chain_seq", sa.BigInteger))
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":  # ledger_append_only() is 0001's
        op.execute(f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} FOR EACH ROW EXECUTE FUNCTION ledger_append_only()")
        op.execute(f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()")
    elif dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger table {TABLE} is append-only: {action} refused (a correction is a new entry)'); END"
            )
    _cover_rows_stored_before()


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cover_rows_stored_before() -> None:
    conn = op.get_bind()
    ids = {"decisions": "SELECT decision_id, content_hash FROM ledger_decisions",
           "rejections": "SELECT rejection_id, content_hash FROM ledger_rejections",
           "listings": "SELECT source, event_id, content_hash FROM ledger_exclusion_listings",
           "accounts": "SELECT source, event_id, content_hash FROM ledger_payee_accounts"}
    body = {}
    for name, query in ids.items():
        rows = [[row[0] if len(row) == 2 else _canonical([row[0], row[1]]), row[-1]] for row in conn.exec_driver_sql(query)]
        if rows:
            body[name] = [len(rows), _sha256(_canonical(sorted(rows)))]
    if not body:
        return
    head_seq, head_hash = conn.exec_driver_sql("SELECT seq, head_hash FROM ledger_chain_head WHERE id = 1").one()
    seq, kind, subject, actor = int(head_seq) + 1, "records-before-0008", "migration", "ledger"
    text = _canonical(body)
    content_hash = _sha256(text)
    entry_hash = _sha256(head_hash + "\n" + _canonical([seq, "fact", kind, subject, actor, content_hash]))
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
    conn.execute(sa.text(f"INSERT INTO {TABLE} (seq, kind, subject, actor, body, content_hash, prev_hash, entry_hash, recorded_at) "
                         "VALUES (:seq, :kind, :subject, :actor, :body, :content_hash, :prev_hash, :entry_hash, :recorded_at)"),
                 {"seq": seq, "kind": kind, "subject": subject, "actor": actor, "body": text, "content_hash": content_hash,
                  "prev_hash": head_hash, "entry_hash": entry_hash, "recorded_at": now})
    conn.execute(sa.text("UPDATE ledger_chain_head SET seq = :seq, head_hash = :head_hash WHERE id = 1"), {"seq": seq, "head_hash": entry_hash})


def downgrade() -> None:
    for table in COVERED:
        op.drop_column(table, "chain_seq")
    op.drop_table(TABLE)
