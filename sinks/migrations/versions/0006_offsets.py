"""Offsets: a clawback (money the payee owes back) netted against the same payee's next payment
when a batch is proposed, each its own append-only row with a place in the journal's hash chain.

Revision ID: 0006_offsets
Revises: 0005_exclusion_listings
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_offsets"
down_revision = "0005_exclusion_listings"
branch_labels = None
depends_on = None

TABLE = "ledger_offsets"  # a fact: an offset is never changed, a correction is a new row


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), nullable=False),
        sa.Column("payment_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), nullable=False),
        sa.Column("clawback_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), nullable=False),
        sa.Column("payee_id", sa.String(128), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("debit_account", sa.String(300), nullable=False),
        sa.Column("credit_account", sa.String(300), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name="ck_offsets_positive"),
        sa.CheckConstraint("debit_account <> credit_account", name="ck_offsets_two_accounts"),
        sa.UniqueConstraint("payment_id", "clawback_id", name="uq_offsets_payment_clawback"),
    )
    op.create_index("ix_ledger_offsets_payee", TABLE, ["payee_id"])
    op.create_index("ix_ledger_offsets_clawback", TABLE, ["clawback_id"])
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


def downgrade() -> None:
    op.drop_table(TABLE)
