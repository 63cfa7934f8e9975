"""Console operators with roles, and the append-only record of their actions.

Revision ID: 0004_console_users
Revises: 0002_payment_holds
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_console_users"
down_revision = "0003_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.CheckConstraint("role IN ('viewer', 'maker', 'checker', 'admin')", name="ck_console_users_role"),
    )
    op.create_table(
        "operator_actions",
        sa.Column("action_id", sa.String(36), primary_key=True),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_operator_actions_subject", "operator_actions", ["subject"])
    # an operator's action is a fact like a decision: refused UPDATE, DELETE (and TRUNCATE)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TRIGGER operator_actions_append_only BEFORE UPDATE OR DELETE ON operator_actions "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()")
        op.execute("CREATE TRIGGER operator_actions_no_truncate BEFORE TRUNCATE ON operator_actions "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER operator_actions_no_{action.lower()} BEFORE {action} ON operator_actions "
                       f"BEGIN SELECT RAISE(ABORT, 'ledger table operator_actions is append-only: {action} refused (a correction is a new entry)'); END")


def downgrade() -> None:
    op.drop_table("operator_actions")
    op.drop_table("console_users")
