"""The ledger: where decisions, payment instructions and rejections become durable facts.

A second line of defence behind the stream. Whatever the stream sends, the database refuses
what must never happen:

* an instruction, decision or rejection id is a primary key: a repeat with the same content is
  a no-op, with different content :class:`LedgerConflict`;
* every payment is charged to the caps it names (``computation.caps``) in ``ledger_cap_usage``,
  whose ``CHECK (used <= cap_limit)`` refuses an overrun; clawbacks give the room back;
* every instruction is one balanced transfer in a double-entry journal (budget account of the
  clause and fiscal year <-> payable account of the payee); rows are append-only (triggers
  refuse UPDATE and DELETE) and hash-chained with the decisions, rejections, listings and
  payment events, so an edited row is detected by :meth:`Ledger.verify_chain`; signed
  checkpoints of the chain head (``checkpoints.py``) show a chain re-hashed or cut short.

Writes of one ``record()`` call are one transaction, serialised on the chain head row
(``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite). Because a batch is
idempotent, ``record()`` retries it when the database is unreachable or the connection drops.
A batch is written a table at a time (ids checked with one query per table, rows streamed with
``COPY`` on PostgreSQL, net cap changes applied once per scope); the checks that name a culprit
run in Python in batch order, the constraints above stay the last line.

By job: ``schema.py`` the tables (defined once), ``database.py`` URLs, engines, migrations,
retries and bulk reads and writes, ``booking.py`` ``record()`` with the content hashes and cap
charges, ``queries.py`` balances, statements and counts, ``chain.py`` the hash chain's facts
(``append_fact``: any kind of fact into the chain), ``verification.py`` the chain walked and the
derived data recomputed, ``checkpoints.py`` the chain head signed outside the database, ``holds.py``
the payments held while their payee is listed on payee-exclusions (contract v1.1), ``payments.py``
payee accounts and maker-checker batches, ``receivables.py`` clawbacks netted against the next
payments (offsets) and the aged receivables left, ``bank_answers.py`` the bank's answers, re-issues
and voids.
What other modules use is imported from here.
"""

from __future__ import annotations

from typing import Collection

from sinks.ledger.bank_answers import AnswersRefused, BankAnswers
from sinks.ledger.booking import Booking, CapOverrun, InvalidRecord, LedgerConflict, RecordResult, canonical_json, payable_account, sha256_hex
from sinks.ledger.database import (
    DEFAULT_LEDGER_URL,
    LedgerError,
    LedgerUnavailable,
    RetryPolicy,
    first_line,
    holds_ledger,
    ledger_url,
    make_engine,
    parse_ledger_url,
    reader_ledger_url,
    shown_url,
    upgrade_schema,
)
from sinks.ledger.holds import Holds
from sinks.ledger.operator_actions import OperatorActions
from sinks.ledger.payments import PaymentRefused
from sinks.ledger.queries import Queries
from sinks.ledger.receivables import Receivables
from sinks.ledger.verification import ChainWalk, Verification

__all__ = [
    "DEFAULT_LEDGER_URL",
    "AnswersRefused",
    "CapOverrun",
    "InvalidRecord",
    "Ledger",
    "LedgerConflict",
    "LedgerError",
    "LedgerUnavailable",
    "PaymentRefused",
    "RecordResult",
    "RetryPolicy",
    "canonical_json",
    "first_line",
    "holds_ledger",
    "ledger_url",
    "make_engine",
    "parse_ledger_url",
    "payable_account",
    "reader_ledger_url",
    "sha256_hex",
    "shown_url",
    "upgrade_schema",
]


class Ledger(Booking, Queries, Verification, Holds, BankAnswers, Receivables, OperatorActions):
    """A ledger database: ``Ledger.open(url)`` (creates or upgrades its schema), then ``record()``
    batches, query them and ``verify_chain()``; a context manager that closes its engine."""

    def walk_chain(self, at: Collection[int] = ()) -> ChainWalk:
        """The hash chain (``Verification``), then the bank's answers, postings and voids, and the
        operators' actions against its entries."""
        walk = super().walk_chain(at)
        walk.problems.extend(self.verify_bank_answers())
        walk.problems.extend(self.verify_operator_actions())
        return walk
