"""Payments: payee accounts, maker-checker batches, approvals, payment events, and the payments'
events in the journal's hash chain.

Revision ID: 0003_payments
Revises: 0002_payment_holds
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_payments"
down_revision = "0002_payment_holds"
branch_labels = None
depends_on = None

# Facts, like 0001's: never updated, never deleted (a revocation, an approval, a status is a new row).
APPEND_ONLY = ("ledger_payee_accounts", "ledger_batches", "ledger_batch_items", "ledger_approvals", "ledger_payment_events", "ledger_chain_events")


def _ts() -> sa.Column:
    return sa.Column("recorded_at", sa.String(40), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ledger_payee_accounts",
        sa.Column("source", sa.String(256), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("payee_id", sa.String(128), nullable=False),
        sa.Column("account_name", sa.String(256), nullable=False),
        sa.Column("account_number", sa.String(32), nullable=False),
        sa.Column("bank_code", sa.String(12), nullable=False),
        sa.Column("verified_at", sa.String(40), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        _ts(),
    )
    op.create_index("ix_ledger_payee_accounts_payee", "ledger_payee_accounts", ["payee_id"])

    op.create_table(
        "ledger_batches",
        sa.Column("batch_id", sa.String(35), primary_key=True),
        sa.Column("maker", sa.String(100), nullable=False),
        sa.Column("proposed_at", sa.String(40), nullable=False),
        sa.Column("clause_id", sa.String(100)),
        sa.Column("until_date", sa.String(10)),
        sa.Column("number_of_transactions", sa.Integer, nullable=False),
        sa.Column("control_sum_fen", sa.BigInteger, nullable=False),
        sa.Column("approvals_required", sa.Integer, nullable=False),
        sa.Column("items_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("number_of_transactions > 0 AND control_sum_fen > 0", name="ck_batches_not_empty"),
        sa.CheckConstraint("approvals_required IN (1, 2)", name="ck_batches_approvals"),
    )
    op.create_table(
        "ledger_batch_items",
        sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), primary_key=True),
        sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), primary_key=True),
        sa.Column("payee_id", sa.String(128), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("account_name", sa.String(256), nullable=False),
        sa.Column("account_number", sa.String(32), nullable=False),
        sa.Column("bank_code", sa.String(12), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name="ck_batch_items_positive"),
    )
    op.create_index("ix_ledger_batch_items_instruction", "ledger_batch_items", ["instruction_id"])
    op.create_table(
        "ledger_approvals",
        sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), primary_key=True),
        sa.Column("approver", sa.String(100), primary_key=True),
        sa.Column("approved_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "ledger_payment_events",
        sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), primary_key=True),
        sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("reason_code", sa.String(8)),
        sa.CheckConstraint("status IN ('batched', 'approved', 'sent', 'accepted', 'rejected', 'settled', 'returned')", name="ck_payment_events_status"),
    )
    op.create_index("ix_ledger_payment_events_batch", "ledger_payment_events", ["batch_id"])
    op.create_table(
        "ledger_chain_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
        _ts(),
        sa.CheckConstraint("kind IN ('batch-proposed', 'batch-approved', 'batch-sent')", name="ck_chain_events_kind"),
    )

    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        if dialect == "postgresql":  # ledger_append_only() is 0001's
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION ledger_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()")
        elif dialect == "sqlite":
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only: {action} refused (a correction is a new entry)'); END"
                )


def downgrade() -> None:
    for table in ("ledger_chain_events", "ledger_payment_events", "ledger_approvals", "ledger_batch_items", "ledger_batches", "ledger_payee_accounts"):
        op.drop_table(table)
