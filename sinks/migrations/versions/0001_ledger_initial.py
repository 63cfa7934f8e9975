"""Ledger: decisions, instructions, rejections, double-entry hash-chained journal, cap usage.

Revision ID: 0001_ledger_initial
Revises:
Create Date: 2026-01-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger_initial"
down_revision = None
branch_labels = None
depends_on = None

GENESIS = "0" * 64

# Rows that are facts: never updated, never deleted (a correction is a new row).
APPEND_ONLY = ("ledger_decisions", "ledger_instructions", "ledger_rejections", "ledger_journal", "ledger_cap_charges")


def _ts() -> sa.Column:
    return sa.Column("recorded_at", sa.String(40), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ledger_chain_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_chain_head_single_row"),
        sa.CheckConstraint("seq >= 0", name="ck_chain_head_seq"),
    )
    op.execute(sa.text(f"INSERT INTO ledger_chain_head (id, seq, head_hash) VALUES (1, 0, '{GENESIS}')"))

    op.create_table(
        "ledger_accounts",
        sa.Column("account_id", sa.String(300), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("policy_id", sa.String(100)),
        sa.Column("clause_id", sa.String(100)),
        sa.Column("fiscal_year", sa.Integer),
        sa.Column("payee_id", sa.String(128)),
        sa.Column("payee_kind", sa.String(32)),
        sa.Column("name", sa.String(400), nullable=False),
        sa.CheckConstraint("kind IN ('budget', 'payable')", name="ck_accounts_kind"),
    )

    op.create_table(
        "ledger_decisions",
        sa.Column("decision_id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("clause_id", sa.String(100), nullable=False),
        sa.Column("fiscal_year", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("granted_fen", sa.BigInteger, nullable=False),
        sa.Column("instruction_id", sa.String(64)),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        _ts(),
    )
    op.create_index("ix_ledger_decisions_clause_year", "ledger_decisions", ["clause_id", "fiscal_year"])

    op.create_table(
        "ledger_instructions",
        sa.Column("instruction_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("policy_id", sa.String(100), nullable=False),
        sa.Column("policy_version", sa.String(100), nullable=False),
        sa.Column("clause_id", sa.String(100), nullable=False),
        sa.Column("fiscal_year", sa.Integer, nullable=False),
        sa.Column("payee_id", sa.String(128), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("corrects", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id")),
        sa.Column("occurred_at", sa.String(40), nullable=False),
        sa.Column("value_date", sa.String(10), nullable=False),
        sa.Column("journal_seq", sa.BigInteger, nullable=False, unique=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        _ts(),
        sa.CheckConstraint(
            "(kind = 'payment' AND amount_fen > 0 AND corrects IS NULL) OR (kind = 'clawback' AND amount_fen < 0 AND corrects IS NOT NULL)",
            name="ck_instructions_kind_sign",
        ),
        sa.CheckConstraint("currency = 'CNY'", name="ck_instructions_currency"),
    )
    op.create_index("ix_ledger_instructions_value_date", "ledger_instructions", ["value_date"])
    op.create_index("ix_ledger_instructions_payee_year", "ledger_instructions", ["payee_id", "fiscal_year"])
    op.create_index("ix_ledger_instructions_corrects", "ledger_instructions", ["corrects"])

    op.create_table(
        "ledger_rejections",
        sa.Column("rejection_id", sa.String(128), primary_key=True),
        sa.Column("topic", sa.String(200)),
        sa.Column("code", sa.String(100)),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        _ts(),
    )

    op.create_table(
        "ledger_journal",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id", deferrable=True, initially="DEFERRED"), nullable=False, unique=True),
        sa.Column("entry_kind", sa.String(16), nullable=False),
        sa.Column("debit_account", sa.String(300), sa.ForeignKey("ledger_accounts.account_id"), nullable=False),
        sa.Column("credit_account", sa.String(300), sa.ForeignKey("ledger_accounts.account_id"), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("clause_id", sa.String(100), nullable=False),
        sa.Column("fiscal_year", sa.Integer, nullable=False),
        sa.Column("payee_id", sa.String(128), nullable=False),
        sa.Column("instruction_hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
        _ts(),
        sa.CheckConstraint("amount_fen > 0", name="ck_journal_amount_positive"),
        sa.CheckConstraint("debit_account <> credit_account", name="ck_journal_two_accounts"),
        sa.CheckConstraint("entry_kind IN ('payment', 'clawback')", name="ck_journal_kind"),
    )
    op.create_index("ix_ledger_journal_debit", "ledger_journal", ["debit_account"])
    op.create_index("ix_ledger_journal_credit", "ledger_journal", ["credit_account"])

    op.create_table(
        "ledger_cap_usage",
        sa.Column("scope", sa.String(600), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("cap_limit", sa.BigInteger, nullable=False),
        sa.Column("used", sa.BigInteger, nullable=False),
        sa.CheckConstraint("kind IN ('amount', 'count')", name="ck_cap_usage_kind"),
        sa.CheckConstraint("used >= 0", name="ck_cap_usage_not_negative"),
        sa.CheckConstraint("used <= cap_limit", name="ck_cap_usage_within_limit"),
    )

    op.create_table(
        "ledger_cap_charges",
        sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id", deferrable=True, initially="DEFERRED"), primary_key=True),
        sa.Column("scope", sa.String(600), sa.ForeignKey("ledger_cap_usage.scope"), primary_key=True),
        sa.Column("delta", sa.BigInteger, nullable=False),
    )

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION 'ledger table % is append-only: % refused (a correction is a new entry)', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
            END $$;
            """
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
            )
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()")
    elif dialect == "sqlite":
        for table in APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only: {action} refused (a correction is a new entry)'); END"
                )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in ("ledger_cap_charges", "ledger_cap_usage", "ledger_journal", "ledger_rejections", "ledger_instructions", "ledger_decisions", "ledger_accounts", "ledger_chain_head"):
        op.drop_table(table)
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
