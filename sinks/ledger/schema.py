"""The ledger's tables, defined once: what booking writes, queries and verification read, and the
console reads.

The database schema itself is created by the Alembic migrations in ``sinks/migrations``, which
are history and do not import these definitions. ``tests/ledger/test_schema.py`` checks that the
migrations create exactly these tables, columns, keys, constraints and indexes, and the
append-only triggers on :data:`APPEND_ONLY`, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

GENESIS_HASH = "0" * 64  # the chain head's hash before the first journal entry

# Rows that are facts: never updated, never deleted (a correction is a new row); triggers refuse
# UPDATE and DELETE (and TRUNCATE on PostgreSQL).
APPEND_ONLY: tuple[str, ...] = (
    "ledger_decisions", "ledger_instructions", "ledger_rejections", "ledger_journal", "ledger_cap_charges",
    "ledger_holds", "ledger_hold_releases", "ledger_exclusion_listings",
    # payments (0003_payments): a revocation, an approval, a status is a new row
    "ledger_payee_accounts", "ledger_batches", "ledger_batch_items", "ledger_approvals", "ledger_payment_events", "ledger_chain_events",
    "ledger_offsets",  # 0006_offsets
    # the bank's answers and what they move (0007_bank_answers)
    "ledger_bank_answers", "ledger_payment_postings", "ledger_payment_voids",
    "operator_actions",
    "ledger_chain_facts",  # 0009_chain_facts
)  # fmt: skip

#: a payment's states after ``decided`` (a payment instruction with no event); the last four
#: come with the bank's answers (pain.002, camt.054)
PAYMENT_STATUSES = ("batched", "approved", "sent", "accepted", "rejected", "settled", "returned")
#: the payments' events and the operators' actions (0008) that take a place in the journal's hash chain (ledger_chain_events)
CHAIN_EVENT_KINDS = ("batch-proposed", "batch-approved", "batch-sent", "bank-answers", "payment-voided", "operator-action")
#: the bank's answers (contract v1.1 payment-status)
BANK_ANSWER_STATUSES = ("accepted", "rejected", "settled", "returned")
#: the money moved after the journal's entry: payable -> bank on settlement, back on a return,
#: payable -> budget on a void booked before 0011 (a void is now decide's clawback, a journal entry)
POSTING_KINDS = ("settlement", "return", "void")

metadata = sa.MetaData()


def _recorded_at() -> sa.Column[str]:
    return sa.Column("recorded_at", sa.String(40), nullable=False)


chain_head = sa.Table(
    "ledger_chain_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.CheckConstraint("id = 1", name="ck_chain_head_single_row"),
    sa.CheckConstraint("seq >= 0", name="ck_chain_head_seq"),
)
accounts = sa.Table(
    "ledger_accounts",
    metadata,
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
decisions_t = sa.Table(
    "ledger_decisions",
    metadata,
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
    _recorded_at(),
    sa.Column("chain_seq", sa.BigInteger),  # the ledger_chain_facts entry that covers it (0008)
    sa.Index("ix_ledger_decisions_clause_year", "clause_id", "fiscal_year"),
)
instructions_t = sa.Table(
    "ledger_instructions",
    metadata,
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
    _recorded_at(),
    sa.CheckConstraint(
        "(kind = 'payment' AND amount_fen > 0 AND corrects IS NULL) OR (kind = 'clawback' AND amount_fen < 0 AND corrects IS NOT NULL)",
        name="ck_instructions_kind_sign",
    ),
    sa.CheckConstraint("currency = 'CNY'", name="ck_instructions_currency"),
    sa.Index("ix_ledger_instructions_value_date", "value_date"),
    sa.Index("ix_ledger_instructions_payee_year", "payee_id", "fiscal_year"),
    sa.Index("ix_ledger_instructions_corrects", "corrects"),
)
rejections_t = sa.Table(
    "ledger_rejections",
    metadata,
    sa.Column("rejection_id", sa.String(128), primary_key=True),
    sa.Column("topic", sa.String(200)),
    sa.Column("code", sa.String(100)),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    _recorded_at(),
    sa.Column("chain_seq", sa.BigInteger),
)
journal = sa.Table(
    "ledger_journal",
    metadata,
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
    _recorded_at(),
    sa.CheckConstraint("amount_fen > 0", name="ck_journal_amount_positive"),
    sa.CheckConstraint("debit_account <> credit_account", name="ck_journal_two_accounts"),
    sa.CheckConstraint("entry_kind IN ('payment', 'clawback')", name="ck_journal_kind"),
    sa.Index("ix_ledger_journal_debit", "debit_account"),
    sa.Index("ix_ledger_journal_credit", "credit_account"),
)
cap_usage = sa.Table(
    "ledger_cap_usage",
    metadata,
    sa.Column("scope", sa.String(600), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("cap_limit", sa.BigInteger, nullable=False),
    sa.Column("used", sa.BigInteger, nullable=False),
    sa.CheckConstraint("kind IN ('amount', 'count')", name="ck_cap_usage_kind"),
    sa.CheckConstraint("used >= 0", name="ck_cap_usage_not_negative"),
    sa.CheckConstraint("used <= cap_limit", name="ck_cap_usage_within_limit"),
)
cap_charges = sa.Table(
    "ledger_cap_charges",
    metadata,
    sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id", deferrable=True, initially="DEFERRED"), primary_key=True),
    sa.Column("scope", sa.String(600), sa.ForeignKey("ledger_cap_usage.scope"), primary_key=True),
    sa.Column("delta", sa.BigInteger, nullable=False),
)

# Held payments (migration 0002): a payment of a payee listed on payee-exclusions, with the
# listing that holds it (``body``: the listing as the rule saw it), and the day it was released.
holds_t = sa.Table(
    "ledger_holds",
    metadata,
    sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), primary_key=True),
    sa.Column("listed_party", sa.String(128), nullable=False),
    sa.Column("list", sa.String(64), nullable=False),
    sa.Column("reference", sa.String(256), nullable=False),
    sa.Column("held_from", sa.String(10), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    _recorded_at(),
    sa.Column("chain_seq", sa.BigInteger),  # the ledger_chain_facts entry that covers it (0010)
)
hold_releases = sa.Table(
    "ledger_hold_releases",
    metadata,
    sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_holds.instruction_id"), primary_key=True),
    sa.Column("released_on", sa.String(10), nullable=False),
    _recorded_at(),
    sa.Column("chain_seq", sa.BigInteger),  # the ledger_chain_facts entry that covers it (0010)
)

# The listings of payee-exclusions as booked (migration 0004): each message once; the newest about
# a listing (rules/exclusions.py) holds and releases the payments (sinks/ledger/holds.py).
exclusion_listings = sa.Table(
    "ledger_exclusion_listings",
    metadata,
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
    _recorded_at(),
    sa.Column("chain_seq", sa.BigInteger),
    sa.Index("ix_ledger_exclusion_listings_payee", "payee_id"),
)

# -- payments (migration 0003_payments) ------------------------------------------------------

payee_accounts = sa.Table(
    "ledger_payee_accounts",
    metadata,
    sa.Column("source", sa.String(256), primary_key=True),
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("payee_id", sa.String(128), nullable=False),
    sa.Column("account_name", sa.String(256), nullable=False),
    sa.Column("account_number", sa.String(32), nullable=False),
    sa.Column("bank_code", sa.String(12), nullable=False),
    sa.Column("verified_at", sa.String(40), nullable=False),  # UTC, so that text order is time order
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    _recorded_at(),
    sa.Column("chain_seq", sa.BigInteger),  # the ledger_chain_facts entry that covers it (0008)
    sa.Index("ix_ledger_payee_accounts_payee", "payee_id"),
)
batches = sa.Table(
    "ledger_batches",
    metadata,
    sa.Column("batch_id", sa.String(35), primary_key=True),  # pain.001 MsgId: at most 35 characters
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
batch_items = sa.Table(
    "ledger_batch_items",
    metadata,
    sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), primary_key=True),
    sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), primary_key=True),
    sa.Column("payee_id", sa.String(128), nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("account_name", sa.String(256), nullable=False),
    sa.Column("account_number", sa.String(32), nullable=False),
    sa.Column("bank_code", sa.String(12), nullable=False),
    sa.CheckConstraint("amount_fen > 0", name="ck_batch_items_positive"),
    sa.Index("ix_ledger_batch_items_instruction", "instruction_id"),
)
approvals = sa.Table(
    "ledger_approvals",
    metadata,
    sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), primary_key=True),
    sa.Column("approver", sa.String(100), primary_key=True),
    sa.Column("approved_at", sa.String(40), nullable=False),
)
payment_events = sa.Table(
    "ledger_payment_events",
    metadata,
    sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), primary_key=True),
    sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id"), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("reason_code", sa.String(8)),  # ISO 20022 status or return reason (AC04 ...)
    sa.CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in PAYMENT_STATUSES) + ")", name="ck_payment_events_status"),
    sa.Index("ix_ledger_payment_events_batch", "batch_id"),
)
chain_events = sa.Table(
    "ledger_chain_events",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),  # shares the journal's sequence
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id")),  # none for an operator's action (0008)
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
    _recorded_at(),
    sa.CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in CHAIN_EVENT_KINDS) + ")", name="ck_chain_events_kind"),
)

# A clawback netted against the same payee's payment when a batch is proposed (migration
# 0006_offsets, sinks/ledger/receivables.py): a double entry (payable to receivable) that takes a
# place in the journal's hash chain like ``chain_events``, its content hash over its own columns.
offsets = sa.Table(
    "ledger_offsets",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),  # shares the journal's sequence
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
    _recorded_at(),
    sa.CheckConstraint("amount_fen > 0", name="ck_offsets_positive"),
    sa.CheckConstraint("debit_account <> credit_account", name="ck_offsets_two_accounts"),
    sa.UniqueConstraint("payment_id", "clawback_id", name="uq_offsets_payment_clawback"),
    sa.Index("ix_ledger_offsets_payee", "payee_id"),
    sa.Index("ix_ledger_offsets_clawback", "clawback_id"),
)

# -- the bank's answers (migration 0007_bank_answers) ----------------------------------------

bank_answers = sa.Table(
    "ledger_bank_answers",
    metadata,
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
    _recorded_at(),
    sa.CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in BANK_ANSWER_STATUSES) + ")", name="ck_bank_answers_status"),
    sa.Index("ix_ledger_bank_answers_instruction", "instruction_id"),
)
payment_postings = sa.Table(
    "ledger_payment_postings",
    metadata,
    sa.Column("posting_id", sa.String(250), primary_key=True),
    sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("debit_account", sa.String(300), nullable=False),
    sa.Column("credit_account", sa.String(300), nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("chain_seq", sa.BigInteger, sa.ForeignKey("ledger_chain_events.seq"), nullable=False),
    _recorded_at(),
    sa.CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in POSTING_KINDS) + ")", name="ck_payment_postings_kind"),
    sa.CheckConstraint("amount_fen > 0", name="ck_payment_postings_positive"),
    sa.CheckConstraint("debit_account <> credit_account", name="ck_payment_postings_two_accounts"),
    sa.Index("ix_ledger_payment_postings_instruction", "instruction_id"),
)
payment_voids = sa.Table(
    "ledger_payment_voids",
    metadata,
    sa.Column("instruction_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id"), primary_key=True),
    sa.Column("batch_id", sa.String(35), sa.ForeignKey("ledger_batches.batch_id")),  # none for a payment never batched (0011)
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("chain_seq", sa.BigInteger, sa.ForeignKey("ledger_chain_events.seq"), nullable=False),
    _recorded_at(),
    # the clawback decide emitted for the void, whose journal entry is the void's money (0011);
    # none for a void booked before, whose money is its ``void`` posting
    sa.Column("clawback_id", sa.String(64), sa.ForeignKey("ledger_instructions.instruction_id", name="fk_payment_voids_clawback")),
)

# Any other fact that decides money, in the journal's hash chain (migration 0008): a booked batch's
# decisions, rejections and listings (sinks/ledger/chain.py), and what later kinds append.
chain_facts = sa.Table(
    "ledger_chain_facts",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),  # shares the journal's sequence
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
    _recorded_at(),
)

# The console's operators (console/users.py) and every state-changing action they took.
OPERATOR_ROLES = ("viewer", "maker", "checker", "admin")  # each may do what the ones before it may
console_users = sa.Table(
    "console_users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.CheckConstraint("role IN ('viewer', 'maker', 'checker', 'admin')", name="ck_console_users_role"),
)
operator_actions = sa.Table(
    "operator_actions",
    metadata,
    sa.Column("action_id", sa.String(36), primary_key=True),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    _recorded_at(),
    sa.Index("ix_operator_actions_subject", "subject"),
)
