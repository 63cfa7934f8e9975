"""Receivables: a clawback is money its payee owes back, netted against the same payee's next
payments when a batch is proposed; what no payment has covered yet is reported aged.

A payee's open receivables are its clawbacks less what offsets have netted of each, oldest first
(by journal sequence). ``net_payments`` takes a batch's payments in their order and withholds
from each what the payee owes, oldest receivable first, never below zero: the batch item carries
the rest, and a payment netted entirely is in no batch item, only in its offsets.

Each offset is its own append-only row (``ledger_offsets``) and a double entry: the payee's
payable is debited (that much of the payment is not paid out) and its receivable credited (that
much of the clawback is recovered). booking.py books the clawback itself against the payable, so
the payee's position is its payable less its receivable, which an offset leaves as it was.
An offset takes the next place in the journal's hash chain like the payments' events
(``ledger_chain_events``), its content hash over its own columns, so ``verify_chain`` finds one
edited, added or removed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sinks.ledger.booking import _SET_HEAD, canonical_json, payable_account, sha256_hex
from sinks.ledger.database import LedgerDatabase
from sinks.ledger.payments import VOID_REQUESTED, chain_event_hash
from sinks.ledger.schema import accounts, instructions_t, offsets, operator_actions, payment_voids

#: ageing buckets: (label, oldest day of the bucket), by days since the clawback's value date
AGE_BUCKETS = (("0-30", 30), ("31-90", 90), ("91-180", 180), (">180", None))
_CONTENT = ("batch_id", "payment_id", "clawback_id", "payee_id", "amount_fen", "debit_account", "credit_account")


def receivable_account(payee_id: str) -> str:
    return f"receivable:{payee_id}"


@dataclass(slots=True)
class OpenReceivable:
    clawback_id: str
    value_date: str
    owed_fen: int  # the clawback's amount (positive) less what offsets netted of it


@dataclass(frozen=True, slots=True)
class Offset:
    payment_id: str
    clawback_id: str
    payee_id: str
    amount_fen: int


def net_payments(items: list[tuple[Any, ...]], owed: dict[str, list[OpenReceivable]]) -> tuple[list[tuple[Any, ...]], list[Offset]]:
    """Net batch items ``(instruction id, payee id, amount fen, *rest)``, in their order, against
    the payees' open receivables (oldest first; consumed in place). Returns the items still paid
    (amount less what was withheld, those netted to zero left out) and the offsets."""
    paid: list[tuple[Any, ...]] = []
    netted: list[Offset] = []
    for item in items:
        instruction_id, payee_id, amount = item[0], item[1], int(item[2])
        open_ = owed.get(payee_id, [])
        while amount and open_:
            receivable = open_[0]
            take = min(amount, receivable.owed_fen)
            netted.append(Offset(instruction_id, receivable.clawback_id, payee_id, take))
            amount -= take
            receivable.owed_fen -= take
            if not receivable.owed_fen:
                open_.pop(0)
        if amount:
            paid.append((instruction_id, payee_id, amount, *item[3:]))
    return paid, netted


def open_receivables(conn: Connection, *, as_of: str | None = None, zone: dt.tzinfo | None = None) -> dict[str, list[OpenReceivable]]:
    """payee id -> its open receivables, oldest first; ``as_of`` (a date in ``zone``): clawbacks of
    value date up to it, less the offsets recorded by its end. None of a payment voided by a
    clawback (sinks/ledger/bank_answers.py ``book_voids``), nor of one whose void an operator
    requested (it is stopped, and stays stopped should decide refuse the void because the payment
    grants nothing any more): it never reached the payee, who owes nothing of it."""
    i = instructions_t.c
    voided = sa.exists().where(payment_voids.c.instruction_id == i.corrects, payment_voids.c.clawback_id.isnot(None))
    requested = sa.exists().where(operator_actions.c.action == VOID_REQUESTED, operator_actions.c.subject == i.corrects)
    query = (sa.select(i.instruction_id, i.payee_id, i.amount_fen, i.value_date)
             .where(i.kind == "clawback", ~voided, ~requested).order_by(i.journal_seq))
    if as_of:
        query = query.where(i.value_date <= as_of)
    recovered: dict[str, int] = {}
    for clawback_id, amount, recorded_at in conn.execute(sa.select(offsets.c.clawback_id, offsets.c.amount_fen, offsets.c.recorded_at)):
        if as_of is None or dt.datetime.fromisoformat(recorded_at).astimezone(zone or dt.timezone.utc).date().isoformat() <= as_of:
            recovered[clawback_id] = recovered.get(clawback_id, 0) + int(amount)
    owed: dict[str, list[OpenReceivable]] = {}
    for clawback_id, payee_id, amount, value_date in conn.execute(query):
        left = -int(amount) - recovered.get(clawback_id, 0)
        if left > 0:
            owed.setdefault(payee_id, []).append(OpenReceivable(clawback_id, value_date, left))
    return owed


def chain_offsets(conn: Connection, head: tuple[int, str], batch_id: str, actor: str, netted: list[Offset], now: str) -> tuple[int, str]:
    """Record a proposal's offsets, each at the next place of the hash chain (under the lock the
    caller holds); returns the new head."""
    seq, prev = head
    rows = []
    for offset in netted:
        seq += 1
        content = {"batch_id": batch_id, "payment_id": offset.payment_id, "clawback_id": offset.clawback_id, "payee_id": offset.payee_id,
                   "amount_fen": offset.amount_fen, "debit_account": payable_account(offset.payee_id), "credit_account": receivable_account(offset.payee_id)}
        content_hash = sha256_hex(canonical_json(content))
        digest = chain_event_hash(prev, seq, "offset", batch_id, actor, content_hash)
        rows.append({**content, "seq": seq, "actor": actor, "content_hash": content_hash, "prev_hash": prev, "entry_hash": digest, "recorded_at": now})
        prev = digest
    if rows:
        conn.execute(offsets.insert(), rows)
        conn.execute(_SET_HEAD, {"seq": seq, "head_hash": prev})
    return seq, prev


def offset_chain_entries(conn: Connection) -> list[Any]:
    """The offsets as entries of the hash chain, shaped like ``ledger_chain_events`` rows (kind
    ``offset``, ``body`` their content recomputed from the columns) for verification."""
    return [SimpleNamespace(seq=r.seq, kind="offset", batch_id=r.batch_id, actor=r.actor, content_hash=r.content_hash, prev_hash=r.prev_hash,
                            entry_hash=r.entry_hash, body=canonical_json({name: (int(r.amount_fen) if name == "amount_fen" else getattr(r, name)) for name in _CONTENT}))
            for r in conn.execute(sa.select(offsets).order_by(offsets.c.seq))]


def offset_entries(conn: Connection) -> list[tuple[str, str, int]]:
    """(debit account, credit account, fen) of every offset, for balances."""
    return [(r.debit_account, r.credit_account, int(r.amount_fen)) for r in conn.execute(sa.select(offsets.c.debit_account, offsets.c.credit_account, offsets.c.amount_fen))]


def age_bucket(days: int) -> str:
    return next(label for label, oldest in AGE_BUCKETS if oldest is None or days <= oldest)


@dataclass(slots=True)
class PayeeReceivable:
    payee_id: str
    payee_name: str
    owed_fen: int
    since: str  # value date of the oldest clawback still owed
    buckets: dict[str, int] = field(default_factory=lambda: {label: 0 for label, _ in AGE_BUCKETS})


@dataclass(slots=True)
class AgedReceivables:
    as_of: str
    payees: list[PayeeReceivable]

    @property
    def total_fen(self) -> int:
        return sum(p.owed_fen for p in self.payees)

    @property
    def bucket_totals(self) -> dict[str, int]:
        return {label: sum(p.buckets[label] for p in self.payees) for label, _ in AGE_BUCKETS}

    def to_json(self) -> dict[str, Any]:
        from rules.money import format_fen

        return {"as_of": self.as_of, "currency": "CNY",
                "payees": [{"payee_id": p.payee_id, "payee_name": p.payee_name, "owed": format_fen(p.owed_fen), "since": p.since,
                            "buckets": {k: format_fen(v) for k, v in p.buckets.items()}} for p in self.payees],
                "total": format_fen(self.total_fen), "buckets": {k: format_fen(v) for k, v in self.bucket_totals.items()}}


class Receivables(LedgerDatabase):
    """What payees owe back that no payment has covered yet."""

    def receivables(self, as_of: str | None = None) -> AgedReceivables:
        """Open receivables by payee as of a date (today in the policy's time zone when None),
        each clawback's rest aged from its value date; largest debt first."""
        zone = self.zone or dt.timezone.utc
        as_of = as_of or dt.datetime.now(zone).date().isoformat()
        day = dt.date.fromisoformat(as_of)
        with self.engine.connect() as conn:
            owed = open_receivables(conn, as_of=as_of, zone=zone)
            names = dict(self._select_in(conn, accounts, "account_id, name", "account_id", (payable_account(p) for p in owed))) if owed else {}
        payees = []
        for payee_id, open_ in owed.items():
            payee = PayeeReceivable(payee_id, names.get(payable_account(payee_id), payee_id), sum(r.owed_fen for r in open_), min(r.value_date for r in open_))
            for r in open_:
                payee.buckets[age_bucket((day - dt.date.fromisoformat(r.value_date)).days)] += r.owed_fen
            payees.append(payee)
        payees.sort(key=lambda p: (-p.owed_fen, p.payee_id))
        return AgedReceivables(as_of, payees)
