"""A payment's life after its file went to the bank: the bank's answers (pain.002, camt.054) as
facts, the money they move and the operators' voids as double-entry postings, and three new kinds
of entry in the hash chain (the answers of one file for one batch, a void).

Revision ID: 0007_bank_answers
Revises: 0006_offsets
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_bank_answers"
down_revision = "0006_offsets"
branch_labels = None
depends_on = None

TABLES = ("ledger_bank_answers", "ledger_payment_postings", "ledger_payment_voids")
OLD_KINDS = "kind IN ('batch-proposed', 'batch-approved', 'batch-sent')"
NEW_KINDS = "kind IN ('batch-proposed', 'batch-approved', 'batch-sent', 'bank-answers', 'payment-voided')"


def _ts(name: str = "recorded_at") -> sa.Column:
    return sa.Column(name, sa.String(40), nullable=False)


def _append_only(dialect: str, table: str) -> None:
    if dialect == "postgresql":  # ledger_append_only() is 0001's
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION ledger_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()")
    elif dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only: {action} refused (a correction is a new entry)'); END"
            )


def _chain_events(check: str) -> sa.Table:
    """0003's ledger_chain_events, for SQLite's copy-and-move ALTER (it cannot change a CHECK)."""
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
        _ts(),
        sa.CheckConstraint(check, name="ck_chain_events_kind"),
    )


def _chain_kinds(dialect: str, old: str, new: str) -> None:
    if dialect == "sqlite":
        with op.batch_alter_table("ledger_chain_events", recreate="always", copy_from=_chain_events(old)) as batch:
            batch.drop_constraint("ck_chain_events_kind", type_="check")
            batch.create_check_constraint("ck_chain_events_kind", new)
        _append_only(dialect, "ledger_chain_events")  # the copy has no trigger
    else:
        op.drop_constraint("ck_chain_events_kind", "ledger_chain_events", type_="check")
        op.create_check_constraint("ck_chain_events_kind", "ledger_chain_events", new)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _chain_kinds(dialect, OLD_KINDS, NEW_KINDS)
    op.create_table(
        "ledger_bank_answers",
        sa.Column("event_id", sa.String(200), primary_key=True),  # the payment-status message's
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("end_to_end_id", sa.String(35), nullable=False),
        sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), nullable=False),
        sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason_code", sa.String(8)),
        sa.Column("amount_fen", sa.BigInteger),
        sa.Column("occurred_at", sa.String(40), nullable=False),
        sa.Column("chain_seq", sa.BigInteger, sa.ForeignKey("ledger_chain_events.seq"), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        _ts(),
        sa.CheckConstraint("status IN ('accepted', 'rejected', 'settled', 'returned')", name="ck_bank_answers_status"),
    )
    op.create_index("ix_ledger_bank_answers_instruction", "ledger_bank_answers", ["instruction_id"])
    op.create_table(
        "ledger_payment_postings",
        sa.Column("posting_id", sa.String(250), primary_key=True),
        sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("debit_account", sa.String(300), nullable=False),
        sa.Column("credit_account", sa.String(300), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("chain_seq", sa.BigInteger, sa.ForeignKey("ledger_chain_events.seq"), nullable=False),
        _ts(),
        sa.CheckConstraint("kind IN ('settlement', 'return', 'void')", name="ck_payment_postings_kind"),
        sa.CheckConstraint("amount_fen > 0", name="ck_payment_postings_positive"),
        sa.CheckConstraint("debit_account <> credit_account", name="ck_payment_postings_two_accounts"),
    )
    op.create_index("ix_ledger_payment_postings_instruction", "ledger_payment_postings", ["instruction_id"])
    op.create_table(
        "ledger_payment_voids",
        sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), primary_key=True),
        sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("chain_seq", sa.BigInteger, sa.ForeignKey("ledger_chain_events.seq"), nullable=False),
        _ts(),
    )
    for table in TABLES:
        _append_only(dialect, table)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    _chain_kinds(op.get_bind().dialect.name, NEW_KINDS, OLD_KINDS)
