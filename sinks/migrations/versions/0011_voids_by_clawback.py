"""A void booked from decide's clawback (topic payment-voids): the voided payment may never have
been in a batch, so ``ledger_payment_voids.batch_id`` may be NULL, and ``clawback_id`` names the
clawback whose journal entry moved the money back to the budget. Voids booked before this
revision keep their ``void`` posting in ledger_payment_postings and a NULL ``clawback_id``.

Revision ID: 0011_voids_by_clawback
Revises: 0010_holds_chained
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_voids_by_clawback"
down_revision = "0010_holds_chained"
branch_labels = None
depends_on = None

TABLE = "ledger_payment_voids"


def _payment_voids() -> sa.Table:
    """0007's ledger_payment_voids, for SQLite's copy-and-move ALTER (it cannot change a NOT NULL)."""
    return sa.Table(
        TABLE,
        sa.MetaData(),
        sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), primary_key=True),
        sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("chain_seq", sa.BigInteger, sa.ForeignKey("ledger_chain_events.seq"), nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
    )


def _sqlite_append_only() -> None:
    for action in ("UPDATE", "DELETE"):  # the copy has no trigger
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
            f"BEGIN SELECT RAISE(ABORT, 'ledger table {TABLE} is append-only: {action} refused (a correction is a new entry)'); END"
        )


def upgrade() -> None:
    # named: SQLite's copy-and-move ALTER adds a foreign key by its name
    clawback = sa.Column("clawback_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id", name="fk_payment_voids_clawback"))
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(TABLE, recreate="always", copy_from=_payment_voids()) as batch:
            batch.alter_column("batch_id", existing_type=sa.String(35), nullable=True)
            batch.add_column(clawback)
        _sqlite_append_only()
    else:
        op.alter_column(TABLE, "batch_id", existing_type=sa.String(35), nullable=True)
        op.add_column(TABLE, clawback)


def downgrade() -> None:
    if op.get_bind().execute(sa.text(f"SELECT 1 FROM {TABLE} WHERE clawback_id IS NOT NULL")).first():
        raise RuntimeError("the ledger holds voids booked from a clawback: they cannot be taken out of an append-only ledger")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(TABLE, recreate="always") as batch:
            batch.drop_column("clawback_id")
            batch.alter_column("batch_id", existing_type=sa.String(35), nullable=False)
        _sqlite_append_only()
    else:
        op.drop_column(TABLE, "clawback_id")
        op.alter_column(TABLE, "batch_id", existing_type=sa.String(35), nullable=False)
