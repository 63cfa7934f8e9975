"""Held payments: a payee listed on payee-exclusions (contract v1.1) is paid only once released.

Revision ID: 0002_payment_holds
Revises: 0001_ledger_initial
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_payment_holds"
down_revision = "0001_ledger_initial"
branch_labels = None
depends_on = None

# Facts like the tables of 0001: never updated, never deleted (a release is a new row).
APPEND_ONLY = ("ledger_holds", "ledger_hold_releases")


def upgrade() -> None:
    op.create_table(
        "ledger_holds",
        sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), primary_key=True),
        sa.Column("listed_party", sa.String(128), nullable=False),
        sa.Column("list", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(256), nullable=False),
        sa.Column("held_from", sa.String(10), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "ledger_hold_releases",
        sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_holds.instruction_id"), primary_key=True),
        sa.Column("released_on", sa.String(10), nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
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
    for table in ("ledger_hold_releases", "ledger_holds"):
        op.drop_table(table)
