"""Payments: payee accounts, maker-checker batches of payment instructions, approvals, and what a
payment file is built from.

A payment instruction with no payment event is *decided*. ``propose_batch`` puts the unbatched
payments of payees with a current account, and not held (``holds.py``), into a batch (*batched*), with the account each is paid
to; ``approve_batch`` records an approval by someone other than the maker, and the last approval
a batch needs makes its payments *approved*; ``mark_sent`` records the payment file given to the
bank (*sent*). ``accepted``, ``rejected``, ``settled`` and ``returned`` are the bank's answers
(``ledger_payment_events.status``), booked with the money they move by ``bank_answers.py``, which
also re-issues rejected and returned payments in the next batch.

Each proposal, approval and sending is also an entry of the journal's hash chain
(``ledger_chain_events``): it takes the next sequence number and chains to the head like a journal
entry, under the same lock, so ``verify_chain`` finds one edited, added or removed. A proposal's
entry holds the digest of its items (instruction, payee, amount, account), so an account changed
in ``ledger_batch_items`` after the proposal is found too.

The current account of a payee is its newest verified account (by ``verified_at``) that is not
revoked; an account is revoked by a message for the same account number and bank whose
``verified_at`` is as new as or newer than its verification.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rules.exclusions import Exclusions, Listing
from sinks.ledger.booking import _READ_HEAD, _READ_HEAD_FOR_UPDATE, _SET_HEAD, canonical_json, sha256_hex
from sinks.ledger.chain import RECORDS_BOOKED, append_fact, message_key, records_digest, set_head
from sinks.ledger.database import LedgerDatabase, LedgerError
from sinks.ledger.schema import (
    accounts,
    approvals,
    batch_items,
    batches,
    chain_events,
    exclusion_listings,
    hold_releases,
    holds_t,
    instructions_t,
    offsets,
    operator_actions,
    payee_accounts,
    payment_events,
    payment_voids,
)

DEFAULT_DUAL_APPROVAL_ABOVE_FEN = 10_000_000_00  # 10,000,000.00 CNY
#: the operator action (sinks/ledger/operator_actions.py) that keeps a payment out of batches and
#: re-issues from the moment ``subsidy payments void`` is run until decide's clawback voids it
VOID_REQUESTED = "void-requested"


class PaymentRefused(LedgerError):
    """A payments step the rules refuse (the maker approving, an unapproved batch exported...)."""


@dataclass(frozen=True, slots=True)
class Account:
    payee_id: str
    account_name: str
    account_number: str
    bank_code: str
    verified_at: str
    revoked: bool


@dataclass(frozen=True, slots=True)
class Awaiting:
    """Payments held because their payee has no current account."""

    payee_id: str
    payee_name: str
    payments: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Proposal:
    batch_id: str
    number_of_transactions: int
    control_sum_fen: int
    approvals_required: int
    awaiting: list[Awaiting]
    clawbacks: int  # clawbacks in the same selection: not paid, money to recover
    clawbacks_fen: int
    held: int  # payments of listed payees held today (payee-exclusions): not batched
    offsets: int = 0  # clawbacks netted against these payments (sinks/ledger/receivables.py)
    offsets_fen: int = 0


@dataclass(frozen=True, slots=True)
class BatchState:
    batch_id: str
    maker: str
    proposed_at: str
    clause_id: str | None
    until_date: str | None
    number_of_transactions: int
    control_sum_fen: int
    approvals_required: int
    approvers: list[str]
    sent_at: str | None

    @property
    def status(self) -> str:
        if self.sent_at:
            return "sent"
        return "approved" if len(self.approvers) >= self.approvals_required else "proposed"


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One payment of a batch with what a payment file needs, read without the instruction bodies."""

    instruction_id: str
    payee_id: str
    payee_kind: str | None
    amount_fen: int
    account_name: str
    account_number: str
    bank_code: str
    policy_id: str
    clause_id: str
    fiscal_year: int
    value_date: str
    reissue: int = 0  # its earlier batches: 0 the first sending, n the n-th re-issue (EndToEndId, sinks/iso20022_answers.py)


def utc_text(moment: dt.datetime) -> str:
    """A time as UTC text, so that the text order of stored times is their time order."""
    return moment.astimezone(dt.timezone.utc).isoformat()


def items_digest(rows: Iterable[tuple[str, str, int, str, str, str]]) -> str:
    """Digest of a batch's items: (instruction id, payee id, amount fen, account name, number, bank code)."""
    return sha256_hex(canonical_json(sorted([list(row) for row in rows])))


def chain_event_hash(prev_hash: str, seq: int, kind: str, batch_id: str | None, actor: str, content_hash: str) -> str:
    """A payments event's place in the journal's hash chain (the journal entries' form: prev + fields)."""
    return sha256_hex(prev_hash + "\n" + canonical_json((seq, kind, batch_id, actor, content_hash)))


def account_content(message: dict[str, Any]) -> str:
    """What an account message's content hash is over: payee, name, number, bank, verified_at, revoked."""
    return canonical_json({k: message[k] for k in _ACCOUNT_COLUMNS[2:8]})


def current_accounts(rows: Iterable[Account]) -> dict[str, Account]:
    """payee id -> the account it is paid to (module docstring)."""
    latest: dict[tuple[str, str, str], Account] = {}
    for row in rows:
        key = (row.payee_id, row.account_number, row.bank_code)
        seen = latest.get(key)
        # at the same verified_at a revocation wins: paying a revoked account is the worse mistake
        if seen is None or (row.verified_at, row.revoked) > (seen.verified_at, seen.revoked):
            latest[key] = row
    current: dict[str, Account] = {}
    for row in latest.values():
        if not row.revoked and (row.payee_id not in current or row.verified_at > current[row.payee_id].verified_at):
            current[row.payee_id] = row
    return current


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


_ACCOUNT_COLUMNS = ("source", "event_id", "payee_id", "account_name", "account_number", "bank_code", "verified_at", "revoked", "content_hash", "recorded_at", "chain_seq")
_ITEM_COLUMNS = ("batch_id", "instruction_id", "payee_id", "amount_fen", "account_name", "account_number", "bank_code")


class Payments(LedgerDatabase):
    """Payee accounts and maker-checker batches; each write one transaction under the chain-head lock."""

    # -- payee accounts --------------------------------------------------------------------

    def import_payee_accounts(self, messages: list[dict[str, Any]]) -> tuple[int, int]:
        """Store account messages (``payee-accounts`` fields, ``payee_id`` for the beneficiary,
        times as UTC text); a message seen before (source, event id) with the same content is
        skipped, with other content refused. Returns (new, already present)."""
        if not messages:
            return 0, 0
        now = _now()
        prepared: dict[tuple[str, str], tuple[Any, ...]] = {}
        for m in messages:
            content = account_content(m)
            row = (m["source"], m["event_id"], *(m[k] for k in _ACCOUNT_COLUMNS[2:8]), sha256_hex(content), now)
            key = (m["source"], m["event_id"])
            if key in prepared and prepared[key][8] != row[8]:
                raise PaymentRefused(f"account message {m['event_id']} of {m['source']} twice with different content")
            prepared[key] = row

        def write() -> tuple[int, int]:
            with self.engine.begin() as conn:
                head = self._lock(conn)  # the new accounts take a place in the hash chain (sinks/ledger/chain.py)
                found = self._select_in(conn, payee_accounts, "source, event_id, content_hash", "event_id", {key[1] for key in prepared})
                stored = {(r.source, r.event_id): r.content_hash for r in found}
                fresh = []
                for key, row in prepared.items():
                    if key not in stored:
                        fresh.append(row)
                    elif stored[key] != row[8]:
                        raise PaymentRefused(f"account message {key[1]} of {key[0]} is already in the ledger with other content")
                if fresh:
                    self._insert(conn, payee_accounts, _ACCOUNT_COLUMNS, [(*row, head[0] + 1) for row in fresh])
                    covered = [(message_key(row[0], row[1]), row[8]) for row in fresh]
                    set_head(conn, append_fact(conn, head, RECORDS_BOOKED, "payee-accounts", "ledger", {"accounts": [len(covered), records_digest(covered)]}, now))
                return len(fresh), len(prepared) - len(fresh)

        return self._with_retry(write)[0]

    def _accounts(self, conn: Connection) -> list[Account]:
        columns = [payee_accounts.c[name] for name in ("payee_id", "account_name", "account_number", "bank_code", "verified_at", "revoked")]
        return [Account(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in conn.execute(sa.select(*columns))]

    def payee_accounts(self) -> tuple[dict[str, Account], int]:
        """(payee id -> current account, number of account messages stored)."""
        with self.engine.connect() as conn:
            rows = self._accounts(conn)
        return current_accounts(rows), len(rows)

    # -- selecting payments ----------------------------------------------------------------

    def _unbatched(self, kind: str, clause_id: str | None, until: str | None, *, held: bool = False) -> sa.Select[Any]:
        """Instructions of ``kind`` in no batch nor netted; payments held today (a listed payee, sinks/ledger/holds.py)
        left out, or with ``held`` only those; never a payment voided or whose void was requested, nor a clawback of one
        (sinks/ledger/bank_answers.py)."""
        i = instructions_t.c
        today = dt.datetime.now(self.zone or dt.timezone.utc).date().isoformat()
        released = sa.exists().where(hold_releases.c.instruction_id == holds_t.c.instruction_id, hold_releases.c.released_on <= today)
        is_held = sa.exists().where(holds_t.c.instruction_id == i.instruction_id, ~released)
        payment_id = sa.func.coalesce(i.corrects, i.instruction_id)  # the payment, or the one a clawback corrects
        voided = sa.exists().where(payment_voids.c.instruction_id == payment_id)
        requested = sa.exists().where(operator_actions.c.action == VOID_REQUESTED, operator_actions.c.subject == payment_id)
        query = (sa.select(i.instruction_id, i.payee_id, i.amount_fen, accounts.c.name)
                 .join(accounts, accounts.c.account_id == sa.literal("payable:") + i.payee_id)
                 .where(i.kind == kind, ~sa.exists().where(batch_items.c.instruction_id == i.instruction_id), is_held if held else ~is_held,
                        ~sa.exists().where(offsets.c.payment_id == i.instruction_id),  # a payment netted whole is in no batch item
                        ~voided, ~requested)
                 .order_by(i.journal_seq))
        if clause_id:
            query = query.where(i.clause_id == clause_id)
        if until:
            query = query.where(i.value_date <= until)
        return query

    def awaiting_account(self, *, clause_id: str | None = None, until: str | None = None) -> list[Awaiting]:
        """Unbatched payments whose payee has no current account, by payee."""
        with self.engine.connect() as conn:
            current = current_accounts(self._accounts(conn))
            rows = conn.execute(self._unbatched("payment", clause_id, until)).all()
        return _awaiting(rows, current)

    # -- maker-checker -----------------------------------------------------------------------

    def _lock(self, conn: Connection) -> tuple[int, str]:
        row = conn.execute(_READ_HEAD_FOR_UPDATE if self.dialect == "postgresql" else _READ_HEAD).one()
        return int(row.seq), row.head_hash

    @staticmethod
    def _chain(conn: Connection, head: tuple[int, str], kind: str, batch_id: str | None, actor: str, body: dict[str, Any], now: str) -> tuple[int, str]:
        seq, prev = head[0] + 1, head[1]
        text = canonical_json(body)
        content_hash = sha256_hex(text)
        digest = chain_event_hash(prev, seq, kind, batch_id, actor, content_hash)
        conn.execute(chain_events.insert(), {"seq": seq, "kind": kind, "batch_id": batch_id, "actor": actor, "body": text,
                                             "content_hash": content_hash, "prev_hash": prev, "entry_hash": digest, "recorded_at": now})
        conn.execute(_SET_HEAD, {"seq": seq, "head_hash": digest})
        return seq, digest

    def propose_batch(self, maker: str, *, clause_id: str | None = None, until: str | None = None,
                      dual_approval_above_fen: int = DEFAULT_DUAL_APPROVAL_ABOVE_FEN) -> Proposal:
        """Batch every unbatched payment (of ``clause_id``, value date up to ``until``) whose payee
        has a current account, paid to that account, less what its payee owes back (clawbacks are
        never batched: they are receivables, netted here, sinks/ledger/receivables.py), and re-issue
        the rejected or returned payments whose payee has a corrected account, at the amount first
        sent (sinks/ledger/bank_answers.py)."""
        from sinks.ledger.bank_answers import reissues  # these modules build on this one
        from sinks.ledger.receivables import chain_offsets, net_payments, open_receivables

        def write() -> Proposal:
            now = _now()
            with self.engine.begin() as conn:
                head = self._lock(conn)
                current = current_accounts(self._accounts(conn))
                rows = conn.execute(self._unbatched("payment", clause_id, until)).all()
                clawbacks = [int(r.amount_fen) for r in conn.execute(self._unbatched("clawback", clause_id, until))]
                held = len(conn.execute(self._unbatched("payment", clause_id, until, held=True)).all())
                awaiting = _awaiting(rows, current)
                items = [(r.instruction_id, r.payee_id, int(r.amount_fen), a.account_name, a.account_number, a.bank_code)
                         for r in rows if (a := current.get(r.payee_id)) is not None]
                # the holds follow each claim's day, as a replay does; whatever they say, a payee
                # listed today is not paid today (a listing added or extended after a release)
                items, listed = self._not_listed(conn, items)
                payable = bool(items)
                items, netted = net_payments(items, open_receivables(conn))
                reissued, listed_reissues = self._not_listed(conn, reissues(conn, current, clause_id, until))
                items += reissued
                held += listed + listed_reissues
                if payable and not items:  # an offset names its batch: none without a payment to send
                    raise PaymentRefused(f"nothing to batch: every payment{_selection(clause_id, until)} is covered by what its payee owes back "
                                         "(`subsidy ledger receivables`); they are netted in the next batch that pays another payment")
                if not items:
                    held = sum(a.payments for a in awaiting)
                    raise PaymentRefused(f"nothing to batch: no unbatched payment{_selection(clause_id, until)} has a payee with a verified account"
                                         + (f" ({held} payment(s) awaiting an account: `subsidy payments awaiting` lists them)" if held else ""))
                number = int(conn.execute(sa.select(sa.func.count()).select_from(batches)).scalar_one()) + 1
                batch_id = f"PB{number:06d}"
                total = sum(item[2] for item in items)
                required = 2 if total > dual_approval_above_fen else 1
                header = {"batch_id": batch_id, "maker": maker, "proposed_at": now, "clause_id": clause_id, "until_date": until,
                          "number_of_transactions": len(items), "control_sum_fen": total, "approvals_required": required,
                          "items_hash": items_digest(items)}
                conn.execute(batches.insert(), header)
                self._insert(conn, batch_items, _ITEM_COLUMNS, [(batch_id, *item) for item in items])
                self._events(conn, batch_id, "batched", now)
                head = self._chain(conn, head, "batch-proposed", batch_id, maker, header, now)
                chain_offsets(conn, head, batch_id, maker, netted, now)
            return Proposal(batch_id, len(items), total, required, awaiting, len(clawbacks), sum(clawbacks), held, len(netted), sum(o.amount_fen for o in netted))

        return self._with_retry(write)[0]

    def _not_listed(self, conn: Connection, items: list[tuple[str, str, int, str, str, str]]) -> tuple[list[tuple[str, str, int, str, str, str]], int]:
        """The batch items whose payee no payee-exclusions listing covers today, and how many were left out."""
        today = dt.datetime.now(self.zone or dt.timezone.utc).date()
        known = Exclusions(Listing.from_dict(json.loads(row.body))
                           for row in self._select_in(conn, exclusion_listings, "body", "payee_id", {item[1] for item in items}))
        kept = [item for item in items if known.hold([item[1]], today) is None]
        return kept, len(items) - len(kept)

    def _state(self, conn: Connection, batch_id: str) -> BatchState:
        row = conn.execute(sa.select(batches).where(batches.c.batch_id == batch_id)).first()
        if row is None:
            raise PaymentRefused(f"no batch {batch_id!r} in this ledger: `subsidy payments list` shows the batches")
        approvers = [a for (a,) in conn.execute(sa.select(approvals.c.approver).where(approvals.c.batch_id == batch_id).order_by(approvals.c.approved_at))]
        sent = conn.execute(sa.select(sa.func.min(payment_events.c.at)).where(payment_events.c.batch_id == batch_id, payment_events.c.status == "sent")).scalar()
        return BatchState(row.batch_id, row.maker, row.proposed_at, row.clause_id, row.until_date, int(row.number_of_transactions),
                          int(row.control_sum_fen), int(row.approvals_required), approvers, sent)

    def batch(self, batch_id: str) -> BatchState:
        with self.engine.connect() as conn:
            return self._state(conn, batch_id)

    def batches(self) -> list[BatchState]:
        with self.engine.connect() as conn:
            return [self._state(conn, b) for (b,) in conn.execute(sa.select(batches.c.batch_id).order_by(batches.c.batch_id))]

    def approve_batch(self, batch_id: str, approver: str) -> BatchState:
        """Record ``approver``'s approval: never the maker's, one per person; the last one a batch
        needs makes its payments approved."""
        def write() -> BatchState:
            now = _now()
            with self.engine.begin() as conn:
                head = self._lock(conn)
                state = self._state(conn, batch_id)
                if approver == state.maker:
                    raise PaymentRefused(f"{approver} proposed batch {batch_id} and may not approve it: another person must (maker-checker)")
                if state.status != "proposed":
                    raise PaymentRefused(f"batch {batch_id} is already {state.status} (approved by {', '.join(state.approvers)})")
                if approver in state.approvers:
                    raise PaymentRefused(f"{approver} has already approved batch {batch_id}: it needs {state.approvals_required} different approvers")
                conn.execute(approvals.insert(), {"batch_id": batch_id, "approver": approver, "approved_at": now})
                items_hash = conn.execute(sa.select(batches.c.items_hash).where(batches.c.batch_id == batch_id)).scalar_one()
                self._chain(conn, head, "batch-approved", batch_id, approver, {"batch_id": batch_id, "approver": approver, "approved_at": now, "items_hash": items_hash}, now)
                if len(state.approvers) + 1 == state.approvals_required:
                    self._events(conn, batch_id, "approved", now)
                return self._state(conn, batch_id)

        return self._with_retry(write)[0]

    @staticmethod
    def _events(conn: Connection, batch_id: str, status: str, now: str) -> None:
        """Every payment of the batch takes ``status``: one INSERT ... SELECT, no row through Python."""
        rows = sa.select(batch_items.c.instruction_id, batch_items.c.batch_id, sa.literal(status), sa.literal(now)).where(batch_items.c.batch_id == batch_id)
        conn.execute(payment_events.insert().from_select(["instruction_id", "batch_id", "status", "at"], rows))

    def batch_contents(self, batch_id: str) -> tuple[BatchState, list[BatchItem]]:
        """A batch and its payments, in instruction order."""
        i, b = instructions_t.c, batch_items.c
        # one pass over the earlier batches' items rather than a count per item
        earlier = batch_items.alias("earlier")
        sendings = (sa.select(earlier.c.instruction_id, sa.func.count().label("n")).where(earlier.c.batch_id < batch_id)
                    .group_by(earlier.c.instruction_id).subquery())
        query = (sa.select(b.instruction_id, b.payee_id, accounts.c.payee_kind, b.amount_fen, b.account_name, b.account_number, b.bank_code,
                           i.policy_id, i.clause_id, i.fiscal_year, i.value_date, sa.func.coalesce(sendings.c.n, 0))
                 .join(instructions_t, i.instruction_id == b.instruction_id)
                 .join(accounts, accounts.c.account_id == sa.literal("payable:") + b.payee_id)
                 .outerjoin(sendings, sendings.c.instruction_id == b.instruction_id)
                 .where(b.batch_id == batch_id).order_by(b.instruction_id))
        with self.engine.connect() as conn:
            state = self._state(conn, batch_id)
            rows = conn.execute(query).all()
        return state, [BatchItem(r[0], r[1], r[2], int(r[3]), r[4], r[5], r[6], r[7], r[8], int(r[9]), r[10], int(r[11])) for r in rows]

    def mark_sent(self, batch_id: str, actor: str) -> bool:
        """Record that the batch's payment file went to the bank; False when it already had."""
        def write() -> bool:
            now = _now()
            with self.engine.begin() as conn:
                head = self._lock(conn)
                state = self._state(conn, batch_id)
                if state.status == "sent":
                    return False
                if state.status != "approved":
                    raise PaymentRefused(f"batch {batch_id} is not approved ({len(state.approvers)} of {state.approvals_required} approvals)")
                self._events(conn, batch_id, "sent", now)
                self._chain(conn, head, "batch-sent", batch_id, actor, {"batch_id": batch_id, "sent_at": now, "by": actor}, now)
                return True

        return self._with_retry(write)[0]


def _selection(clause_id: str | None, until: str | None) -> str:
    return (f" of {clause_id}" if clause_id else "") + (f" up to {until}" if until else "")


def _awaiting(rows: Iterable[Any], current: dict[str, Account]) -> list[Awaiting]:
    held: dict[str, list[Any]] = {}
    for r in rows:
        if r.payee_id not in current:
            held.setdefault(r.payee_id, []).append(r)
    return [Awaiting(payee, group[0].name, len(group), sum(int(r.amount_fen) for r in group)) for payee, group in sorted(held.items())]
