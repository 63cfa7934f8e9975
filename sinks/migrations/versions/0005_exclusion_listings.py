"""The listings of payee-exclusions (contract v1.1) as booked: the ledger holds and releases the
payments of listed payees from them, whichever of a listing and a payment comes first.

Revision ID: 0005_exclusion_listings
Revises: 0004_console_users
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_exclusion_listings"
down_revision = "0004_console_users"
branch_labels = None
depends_on = None

TABLE = "ledger_exclusion_listings"  # a fact: a listing changed or ended is a newer message, a new row


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("source", sa.String(256), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("payee_id", sa.String(128), nullable=False),
        sa.Column("list", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(256), nullable=False),
        sa.Column("starts", sa.String(10), nullable=False),
        sa.Column("ends", sa.String(10)),
        sa.Column("occurred_at", sa.String(40), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_ledger_exclusion_listings_payee", TABLE, ["payee_id"])
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
