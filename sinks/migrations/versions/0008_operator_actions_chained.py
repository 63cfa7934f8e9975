"""Operators' actions (the console's holds and releases of a payee) in the journal's hash chain:
a chain kind ``operator-action`` whose entry names no batch, and the actions recorded before this
revision appended to the chain in the order they were taken.

Revision ID: 0008_operator_actions_chained
Revises: 0007_bank_answers
Create Date: 2026-12-06
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0008_operator_actions_chained"
down_revision = "0007_bank_answers"
branch_labels = None
depends_on = None

OLD_KINDS = "kind IN ('batch-proposed', 'batch-approved', 'batch-sent', 'bank-answers', 'payment-voided')"
NEW_KINDS = "kind IN ('batch-proposed', 'batch-approved', 'batch-sent', 'bank-answers', 'payment-voided', 'operator-action')"
ACTION_COLUMNS = ("action_id", "user_name", "role", "action", "subject", "reason", "recorded_at")


def _chain_events(check: str) -> sa.Table:
    """0007's ledger_chain_events, for SQLite's copy-and-move ALTER (it cannot change a CHECK nor a NOT NULL)."""
    return sa.Table(
        "ledger_chain_events",
        sa.MetaData(),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.CheckConstraint(check, name="ck_chain_events_kind"),
    )


def _sqlite_append_only() -> None:
    for action in ("UPDATE", "DELETE"):  # the copy has no trigger
        op.execute(
            f"CREATE TRIGGER ledger_chain_events_no_{action.lower()} BEFORE {action} ON ledger_chain_events "
            f"BEGIN SELECT RAISE(ABORT, 'ledger table ledger_chain_events is append-only: {action} refused (a correction is a new entry)'); END"
        )


def _alter(dialect: str, old: str, new: str, batch_id_nullable: bool) -> None:
    if dialect == "sqlite":
        with op.batch_alter_table("ledger_chain_events", recreate="always", copy_from=_chain_events(old)) as batch:
            batch.drop_constraint("ck_chain_events_kind", type_="check")
            batch.create_check_constraint("ck_chain_events_kind", new)
            batch.alter_column("batch_id", existing_type=sa.String(35), nullable=batch_id_nullable)
        _sqlite_append_only()
    else:
        op.drop_constraint("ck_chain_events_kind", "ledger_chain_events", type_="check")
        op.create_check_constraint("ck_chain_events_kind", "ledger_chain_events", new)
        op.alter_column("ledger_chain_events", "batch_id", existing_type=sa.String(35), nullable=batch_id_nullable)


def _canonical(value: object) -> str:
    # sinks/ledger/booking.py canonical_json, spelled out: a migration keeps its own behaviour
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _chain_recorded_actions(conn: sa.Connection) -> None:
    """Each action already in operator_actions takes the chain's next place, as
    sinks/ledger/operator_actions.py appends new ones (the payments' entry form, no batch)."""
    columns = ", ".join(ACTION_COLUMNS)
    actions = conn.execute(sa.text(f"SELECT {columns} FROM operator_actions ORDER BY recorded_at, action_id")).mappings().all()
    if not actions:
        return
    seq, prev = conn.execute(sa.text("SELECT seq, head_hash FROM ledger_chain_head WHERE id = 1")).one()
    seq = int(seq)
    for action in actions:
        seq += 1
        body = _canonical(dict(action))
        content_hash = _sha256(body)
        entry = _sha256(prev + "\n" + _canonical([seq, "operator-action", None, action["user_name"], content_hash]))
        conn.execute(sa.text("INSERT INTO ledger_chain_events (seq, kind, batch_id, actor, body, content_hash, prev_hash, entry_hash, recorded_at) "
                             "VALUES (:seq, 'operator-action', NULL, :actor, :body, :content_hash, :prev, :entry, :at)"),
                     {"seq": seq, "actor": action["user_name"], "body": body, "content_hash": content_hash, "prev": prev, "entry": entry, "at": action["recorded_at"]})
        prev = entry
    conn.execute(sa.text("UPDATE ledger_chain_head SET seq = :seq, head_hash = :head WHERE id = 1"), {"seq": seq, "head": prev})


def upgrade() -> None:
    _alter(op.get_bind().dialect.name, OLD_KINDS, NEW_KINDS, batch_id_nullable=True)
    _chain_recorded_actions(op.get_bind())


def downgrade() -> None:
    if op.get_bind().execute(sa.text("SELECT 1 FROM ledger_chain_events WHERE kind = 'operator-action'")).first():
        raise RuntimeError("the hash chain holds operators' actions: they cannot be taken out of an append-only chain")
    _alter(op.get_bind().dialect.name, NEW_KINDS, OLD_KINDS, batch_id_nullable=False)
