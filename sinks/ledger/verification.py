"""Verification of the ledger: the hash chain walked in sequence order, and every row that decides
money recomputed from what it derives from, so that a row edited, removed or added behind the
ledger's back is found.

The chain's entries are journal entries (with their instructions' content hashes), the payments'
events (``ledger_chain_events``: a proposal's items are checked against the digest its entry
holds) and the other facts (``ledger_chain_facts``, sinks/ledger/chain.py: a booked batch's
decisions, rejections, exclusion listings, payment holds and releases against the digest its fact
holds). Accounts, cap charges and cap usage are derived data: :func:`derived_differences`
recomputes them from the instructions and names each row that differs. What the chain cannot
show (the chain re-hashed from a changed row on, or its tail removed) only something outside the
database can: sinks/ledger/checkpoints.py.
"""

from __future__ import annotations

import heapq
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Collection, Iterator
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rules.money import AmountError, format_fen, parse_amount
from rules.records import Decision, Instruction
from sinks.ledger.booking import _UNHASHED_REJECTION_FIELDS, Booking, budget_account, canonical_json, entry_hash, payable_account, sha256_hex
from sinks.ledger.chain import COVERED_BEFORE_CHAIN, COVERED_TABLES, RECORDS_BOOKED, fact_hash, message_key, records_digest, release_hash
from sinks.ledger.database import LedgerDatabase
from sinks.ledger.operator_actions import KIND as OPERATOR_ACTION
from sinks.ledger.operator_actions import action_name
from sinks.ledger.payments import account_content, chain_event_hash, items_digest
from sinks.ledger.receivables import offset_chain_entries
from sinks.ledger.schema import (
    GENESIS_HASH,
    accounts,
    approvals,
    batch_items,
    batches,
    cap_charges,
    cap_usage,
    chain_events,
    chain_facts,
    chain_head,
    decisions_t,
    exclusion_listings,
    hold_releases,
    holds_t,
    instructions_t,
    journal,
    payee_accounts,
    rejections_t,
)

_UTC = ZoneInfo("UTC")  # for the derived data only: cap charges do not depend on the value date


def _stored_amount(body: dict[str, Any]) -> int | None:
    """The fen of a stored body's amount; None when it is no amount (an edit is a problem to list)."""
    try:
        return parse_amount(body.get("amount"))
    except AmountError:
        return None


def _differs(table: str, row: str, what: str, expected: Any, found: Any) -> str:
    return f"{table} {row}: {what} expected {expected}, found {found}"


@dataclass(slots=True)
class ChainWalk:
    """What walking the chain found: its problems, where it ends, and its hash at the sequence
    numbers asked for (``at``: seq -> (hash after that entry, journal entries up to it))."""

    problems: list[str] = field(default_factory=list)
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    journal_entries: int = 0
    at: dict[int, tuple[str, int]] = field(default_factory=dict)


class Verification(LedgerDatabase):
    """``verify_chain()``: every problem found, an empty list when the ledger is intact."""

    def verify_chain(self) -> list[str]:
        """Walk the hash chain and recompute every covered row's content hash; list each problem found."""
        return self.walk_chain().problems

    def verify(self, at: Collection[int] = ()) -> ChainWalk:
        """The chain walked (:meth:`walk_chain`), then the derived data recomputed (:func:`derived_differences`)."""
        walk = self.walk_chain(at)
        with self.engine.connect() as conn:
            walk.problems.extend(derived_differences(conn))
        return walk

    def walk_chain(self, at: Collection[int] = ()) -> ChainWalk:
        walk = ChainWalk()
        problems = walk.problems
        wanted = set(at)
        prev = GENESIS_HASH
        expected_seq = 0
        with self.engine.connect() as conn:
            bodies = {row.instruction_id: row for row in conn.execute(sa.select(instructions_t.c.instruction_id, instructions_t.c.body, instructions_t.c.content_hash, instructions_t.c.amount_fen, instructions_t.c.journal_seq))}
            events = _PaymentEvents(conn, problems)
            facts = _Facts(conn, problems)
            rows = conn.execute(sa.select(journal).order_by(journal.c.seq))
            merged: Iterator[tuple[str, Any]] = heapq.merge(
                (("journal", r) for r in rows), (("event", e) for e in events.pending), (("fact", f) for f in facts.pending), key=lambda item: int(item[1].seq))
            for source, row in merged:
                expected_seq += 1
                if source == "event":
                    expected_seq, prev = events.check(row, expected_seq, prev)
                elif source == "fact":
                    expected_seq, prev = facts.check(row, expected_seq, prev)
                else:
                    walk.journal_entries += 1
                    expected_seq, prev = _check_entry(dict(row._mapping), expected_seq, prev, bodies, problems)
                if expected_seq in wanted:
                    walk.at[expected_seq] = (prev, walk.journal_entries)
            events.finish()
            facts.finish()
            for iid in bodies:
                problems.append(f"instruction {iid} has no journal entry")
            head = conn.execute(sa.select(chain_head.c.seq, chain_head.c.head_hash)).one()
            if (int(head.seq), head.head_hash) != (expected_seq, prev):
                problems.append(f"chain head (seq {head.seq}) does not match the last journal entry (seq {expected_seq}): entries were removed or added")
        walk.head_seq, walk.head_hash = expected_seq, prev
        return walk


def _check_link(entry: Any, where: str, expected_seq: int, prev: str, recomputed_hash: str, problems: list[str]) -> int:
    """An entry of ``ledger_chain_events`` or ``ledger_chain_facts`` in its place: its seq, its
    link to the previous entry, its own hash and its body's; returns the seq to go on from."""
    if entry.seq != expected_seq:
        problems.append(f"{where}: expected seq {expected_seq} (an entry is missing or was inserted)")
        expected_seq = entry.seq
    if entry.prev_hash != prev:
        problems.append(f"{where}: prev_hash does not match the previous entry's hash")
    if recomputed_hash != entry.entry_hash or sha256_hex(entry.body) != entry.content_hash:
        problems.append(f"{where}: entry hash mismatch: the row was edited")
    return int(expected_seq)


def _check_entry(entry: dict[str, Any], expected_seq: int, prev: str, bodies: dict[str, Any], problems: list[str]) -> tuple[int, str]:
    """One journal entry and its instruction; returns (its seq, its hash)."""
    if entry["seq"] != expected_seq:
        problems.append(f"journal seq {entry['seq']}: expected {expected_seq} (an entry is missing or was inserted)")
        expected_seq = entry["seq"]
    if entry["prev_hash"] != prev:
        problems.append(f"journal seq {entry['seq']}: prev_hash does not match the previous entry's hash")
    if entry_hash(entry["prev_hash"], entry) != entry["entry_hash"]:
        problems.append(f"journal seq {entry['seq']} (instruction {entry['instruction_id']}): entry hash mismatch: the row was edited")
    stored = bodies.pop(entry["instruction_id"], None)
    if stored is None:
        problems.append(f"journal seq {entry['seq']}: instruction {entry['instruction_id']} is missing")
        return expected_seq, entry["entry_hash"]
    body = json.loads(stored.body)
    if sha256_hex(canonical_json(body)) != stored.content_hash or stored.content_hash != entry["instruction_hash"]:
        problems.append(f"instruction {entry['instruction_id']}: content does not match the hash in journal seq {entry['seq']}: the row was edited")
    if abs(int(stored.amount_fen)) != int(entry["amount_fen"]) or _stored_amount(body) != int(stored.amount_fen):
        problems.append(f"instruction {entry['instruction_id']}: amount differs from journal seq {entry['seq']}")
    return expected_seq, entry["entry_hash"]


class _PaymentEvents:
    """The chain entries of ``ledger_chain_events``, checked in their places among the others."""

    def __init__(self, conn: Connection, problems: list[str]):
        # offsets (ledger_offsets) take their places in the same chain, checked as events of kind "offset"
        self.pending: deque[Any] = deque(sorted([*conn.execute(sa.select(chain_events)), *offset_chain_entries(conn)], key=lambda event: event.seq))
        self.problems = problems
        items: dict[str, list[tuple[str, str, int, str, str, str]]] = {}
        for r in conn.execute(sa.select(batch_items)):
            items.setdefault(r.batch_id, []).append((r.instruction_id, r.payee_id, int(r.amount_fen), r.account_name, r.account_number, r.bank_code))
        self.digests = {batch_id: items_digest(rows) for batch_id, rows in items.items()}
        self.headers = {r.batch_id: dict(r._mapping) for r in conn.execute(sa.select(batches))}
        self.approvals = {(r.batch_id, r.approver) for r in conn.execute(sa.select(approvals.c.batch_id, approvals.c.approver))}

    def check(self, event: Any, expected_seq: int, prev: str) -> tuple[int, str]:
        what = action_name(event.body, event.actor) if event.kind == OPERATOR_ACTION else f"{event.kind} of batch {event.batch_id}"
        where = f"chain seq {event.seq} ({what})"
        expected_seq = _check_link(event, where, expected_seq, prev, chain_event_hash(event.prev_hash, event.seq, event.kind, event.batch_id, event.actor, event.content_hash),
                                   self.problems)
        body = json.loads(event.body)
        if event.kind == "batch-proposed":
            header = self.headers.pop(event.batch_id, None)
            if header != body:
                self.problems.append(f"batch {event.batch_id}: its row differs from what {where} holds: the row was edited")
            if self.digests.get(event.batch_id) != body["items_hash"]:
                self.problems.append(f"batch {event.batch_id}: its items differ from the digest {where} holds: an item was edited, added or removed")
        elif event.kind == "batch-approved":
            if (event.batch_id, event.actor) not in self.approvals:
                self.problems.append(f"{where}: the approval by {event.actor} is missing from ledger_approvals")
            self.approvals.discard((event.batch_id, event.actor))
        return expected_seq, event.entry_hash

    def finish(self) -> None:
        """Rows the chain never recorded: added behind the ledger's back."""
        self.problems.extend(f"batch {batch_id} has no proposal in the hash chain: it was added" for batch_id in self.headers)
        self.problems.extend(f"the approval of batch {batch_id} by {approver} is not in the hash chain: it was added" for batch_id, approver in sorted(self.approvals))


class _Facts:
    """The chain entries of ``ledger_chain_facts``, and the rows each covers (sinks/ledger/chain.py)."""

    def __init__(self, conn: Connection, problems: list[str]):
        self.pending = deque(conn.execute(sa.select(chain_facts).order_by(chain_facts.c.seq)))
        self.problems = problems
        before: dict[str, int] = {}  # the migrations' facts: the first of each kind
        for f in reversed(self.pending):
            before[f.kind] = int(f.seq)
        # name -> chain seq -> [(row id, stored content hash)]; rows stored before their table was chained are covered by a migration's one fact
        self.covered: dict[str, dict[int | None, list[tuple[str, str]]]] = {name: {} for name in COVERED_TABLES}
        for name, rows in _covered_rows(conn, problems):
            for row_id, content_hash, chain_seq in rows:
                seq = chain_seq if chain_seq is not None else before.get(COVERED_BEFORE_CHAIN[name])
                self.covered[name].setdefault(seq, []).append((row_id, content_hash))

    def check(self, fact: Any, expected_seq: int, prev: str) -> tuple[int, str]:
        where = f"chain seq {fact.seq} ({fact.kind} fact)"
        expected_seq = _check_link(fact, where, expected_seq, prev, fact_hash(fact.prev_hash, fact.seq, fact.kind, fact.subject, fact.actor, fact.content_hash), self.problems)
        if fact.kind == RECORDS_BOOKED or fact.kind in COVERED_BEFORE_CHAIN.values():
            body = json.loads(fact.body)
            for name, table in COVERED_TABLES.items():
                rows = self.covered[name].pop(int(fact.seq), [])
                count, digest = body.get(name, [0, records_digest([])])
                if len(rows) != count:
                    self.problems.append(_differs(table, f"rows covered by {where}", "count", count, len(rows)) + (": a row was removed" if len(rows) < count else ": a row was added"))
                elif records_digest(rows) != digest:
                    self.problems.append(f"{table}: the rows covered by {where} differ from its digest: a row was replaced")
        return expected_seq, fact.entry_hash

    def finish(self) -> None:
        for name, by_seq in self.covered.items():
            for seq, rows in by_seq.items():
                where = "is in no fact of the chain" if seq is None else f"names chain seq {seq}, where no fact covers it"
                self.problems.extend(f"{COVERED_TABLES[name]} {row_id}: {where}: the row was added" for row_id, _ in rows)


def _covered_rows(conn: Connection, problems: list[str]) -> Iterator[tuple[str, list[tuple[str, str, int | None]]]]:
    """Each covered table's rows as (id, stored content hash, chain seq), each row's content hash and
    columns checked against its body on the way."""
    decisions = []
    for r in conn.execute(sa.select(decisions_t)):
        where = ("ledger_decisions", r.decision_id)
        body = json.loads(r.body)
        _check_hash(where, sha256_hex(canonical_json(body)), r.content_hash, problems)
        try:
            expected = Booking._decision_row(Decision.from_wire(body))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            problems.append(f"{where[0]} {where[1]}: its body is not a decision ({error}): the row was edited")
        else:
            _check_columns(where, expected, dict(r._mapping), problems)
        decisions.append((r.decision_id, r.content_hash, r.chain_seq))
    yield "decisions", decisions
    rejections = []
    for r in conn.execute(sa.select(rejections_t)):
        where = ("ledger_rejections", r.rejection_id)
        body = json.loads(r.body)
        _check_hash(where, sha256_hex(canonical_json({k: v for k, v in body.items() if k not in _UNHASHED_REJECTION_FIELDS})), r.content_hash, problems)
        _check_columns(where, {"topic": body.get("topic"), "code": body.get("code")}, dict(r._mapping), problems)
        rejections.append((r.rejection_id, r.content_hash, r.chain_seq))
    yield "rejections", rejections
    listings = []
    for r in conn.execute(sa.select(exclusion_listings)):
        key = message_key(r.source, r.event_id)
        where = ("ledger_exclusion_listings", key)
        _check_hash(where, sha256_hex(r.body), r.content_hash, problems)
        body = json.loads(r.body)
        _check_columns(where, {name: body.get(name) for name in ("source", "event_id", "payee_id", "list", "reference", "starts", "ends", "occurred_at")}, dict(r._mapping), problems)
        listings.append((key, r.content_hash, r.chain_seq))
    yield "listings", listings
    accounts_stored = []
    for r in conn.execute(sa.select(payee_accounts)):
        key = message_key(r.source, r.event_id)
        fields = {name: getattr(r, name) for name in ("payee_id", "account_name", "account_number", "bank_code", "verified_at")} | {"revoked": bool(r.revoked)}
        _check_hash(("ledger_payee_accounts", key), sha256_hex(account_content(fields)), r.content_hash, problems)
        accounts_stored.append((key, r.content_hash, r.chain_seq))
    yield "accounts", accounts_stored
    held = []
    for r in conn.execute(sa.select(holds_t)):
        where = ("ledger_holds", r.instruction_id)
        _check_hash(where, sha256_hex(r.body), r.content_hash, problems)
        body = json.loads(r.body)
        listing = body.get("listing") or {}
        _check_columns(where, {"listed_party": listing.get("payee_id"), "list": listing.get("list"), "reference": listing.get("reference"),
                               "held_from": body.get("held_from")}, dict(r._mapping), problems)
        held.append((r.instruction_id, r.content_hash, r.chain_seq))
    yield "holds", held
    # a release stores no content hash: its day, hashed, is what the fact covers
    yield "releases", [(r.instruction_id, release_hash(r.released_on), r.chain_seq) for r in conn.execute(sa.select(hold_releases))]


def _check_hash(where: tuple[str, str], recomputed: str, stored: str, problems: list[str]) -> None:
    if recomputed != stored:
        problems.append(_differs(*where, "content hash (of its body)", recomputed, stored) + ": the row was edited")


def _check_columns(where: tuple[str, str], expected: dict[str, Any], found: dict[str, Any], problems: list[str]) -> None:
    for name, value in expected.items():
        if found.get(name) != value:
            problems.append(_differs(*where, f"{name} (from its body)", value, found.get(name)) + ": the row was edited")


def derived_differences(conn: Connection) -> list[str]:
    """Accounts, cap charges and cap usage recomputed from the instructions, in journal order, as
    booking derives them; each row that differs, named with what was expected and what was found.
    Balances are sums of the journal, whose rows the chain covers."""
    problems: list[str] = []
    want_accounts: dict[str, dict[str, Any]] = {}
    want_charges: dict[tuple[str, str], int] = {}
    want_caps: dict[str, dict[str, Any]] = {}
    count_places: dict[tuple[str, str], int] = {}
    decided = {r.instruction_id: (r.decision_id, int(r.granted_fen)) for r in conn.execute(
        sa.select(decisions_t.c.decision_id, decisions_t.c.instruction_id, decisions_t.c.granted_fen).where(decisions_t.c.instruction_id.is_not(None)))}
    query = sa.select(instructions_t.c.instruction_id, instructions_t.c.body, instructions_t.c.amount_fen).order_by(instructions_t.c.journal_seq)
    for iid, text, amount_fen in conn.execute(query):
        try:
            instruction = Instruction.from_wire(json.loads(text))
            row = Booking._instruction_row(instruction, _UTC)
        except Exception as error:  # noqa: BLE001 - the walk names the edited row; here it is left out
            problems.append(f"ledger_instructions {iid}: its body is not an instruction the ledger books ({error}): the row was edited")
            continue
        decision = decided.pop(iid, None)
        if decision is None:
            problems.append(f"ledger_instructions {iid}: no decision names it: its decision was removed, or it was added")
        elif decision[1] != int(amount_fen):
            problems.append(_differs("ledger_instructions", iid, f"amount (granted by decision {decision[0]})", format_fen(decision[1]), format_fen(int(amount_fen))))
        budget = budget_account(row["policy_id"], row["clause_id"], row["fiscal_year"])
        want_accounts.setdefault(budget, {"kind": "budget", "policy_id": row["policy_id"], "clause_id": row["clause_id"], "fiscal_year": row["fiscal_year"], "payee_id": None})
        payee = instruction.payee
        want_accounts.setdefault(payable_account(payee.id), {"kind": "payable", "policy_id": None, "clause_id": None, "fiscal_year": None, "payee_id": payee.id})
        for scope, cap_kind, limit, delta in row["_charges"]:
            cap = want_caps.get(scope)
            if row["kind"] == "clawback":
                if cap is None:
                    continue  # booking refused such a clawback; the walk names the row if it is there
                delta = row["amount_fen"] if cap["kind"] == "amount" else (-count_places.get((row["corrects"], scope), 0) if row["_full_clawback"] else 0)
                if delta == 0:
                    continue
            else:
                cap = want_caps.setdefault(scope, {"kind": cap_kind, "used": 0, "cap_limit": limit})
                cap["cap_limit"] = limit
                count_places[(iid, scope)] = delta
            cap["used"] += delta
            want_charges[(iid, scope)] = delta
    problems.extend(f"ledger_decisions {decision}: names instruction {iid}, which is not in the ledger: it was removed" for iid, (decision, _) in decided.items())
    for r in conn.execute(sa.select(accounts)):
        want = want_accounts.pop(r.account_id, None)
        if want is None:
            problems.append(f"ledger_accounts {r.account_id}: no instruction books to it: the row was added")
            continue
        for name, value in want.items():
            if getattr(r, name) != value:
                problems.append(_differs("ledger_accounts", r.account_id, name, value, getattr(r, name)))
    problems.extend(f"ledger_accounts {account}: missing (instructions book to it): the row was removed" for account in want_accounts)
    for r in conn.execute(sa.select(cap_charges)):
        want_delta = want_charges.pop((r.instruction_id, r.scope), None)
        if want_delta is None:
            problems.append(f"ledger_cap_charges {r.instruction_id} {r.scope}: no instruction charges it: the row was added")
        elif int(r.delta) != want_delta:
            problems.append(_differs("ledger_cap_charges", f"{r.instruction_id} {r.scope}", "delta", want_delta, int(r.delta)))
    problems.extend(f"ledger_cap_charges {iid} {scope}: missing (delta {delta}): the row was removed" for (iid, scope), delta in want_charges.items())
    for r in conn.execute(sa.select(cap_usage)):
        want_cap = want_caps.pop(r.scope, None)
        if want_cap is None:
            problems.append(f"ledger_cap_usage {r.scope}: no instruction is charged to it: the row was added")
            continue
        shown = format_fen if want_cap["kind"] == "amount" else str
        for name, value in want_cap.items():
            found = r.kind if name == "kind" else int(getattr(r, name))
            if found != value:
                problems.append(_differs("ledger_cap_usage", r.scope, name, value if name == "kind" else shown(value), found if name == "kind" else shown(found)))
    problems.extend(f"ledger_cap_usage {scope}: missing (used {cap['used']}): the row was removed" for scope, cap in want_caps.items())
    return problems

