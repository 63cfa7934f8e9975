"""Verification of the ledger: the journal's hash chain and every stored instruction's content
hash recomputed, so that a row edited or removed behind the ledger's back is found. The payments'
events (batch proposals, approvals, sendings: ``ledger_chain_events``) hold places in the same
chain; a proposal's items are checked against the digest its entry holds."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rules.money import AmountError, parse_amount
from sinks.ledger.booking import canonical_json, entry_hash, sha256_hex
from sinks.ledger.database import LedgerDatabase
from sinks.ledger.payments import chain_event_hash, items_digest
from sinks.ledger.receivables import offset_chain_entries
from sinks.ledger.schema import GENESIS_HASH, approvals, batch_items, batches, chain_events, chain_head, instructions_t, journal


def _stored_amount(body: dict[str, Any]) -> int | None:
    """The fen of a stored body's amount; None when it is no amount (an edit is a problem to list)."""
    try:
        return parse_amount(body.get("amount"))
    except AmountError:
        return None


class Verification(LedgerDatabase):
    """``verify_chain()``: every problem found, an empty list when the ledger is intact."""

    def verify_chain(self) -> list[str]:
        """Recompute the hash chain and every stored instruction's content hash; list each problem found."""
        problems: list[str] = []
        prev = GENESIS_HASH
        expected_seq = 0
        with self.engine.connect() as conn:
            bodies = {row.instruction_id: row for row in conn.execute(sa.select(instructions_t.c.instruction_id, instructions_t.c.body, instructions_t.c.content_hash, instructions_t.c.amount_fen, instructions_t.c.journal_seq))}
            events = _PaymentEvents(conn, problems)
            for row in conn.execute(sa.select(journal).order_by(journal.c.seq)):
                entry = dict(row._mapping)
                expected_seq, prev = events.check_before(entry["seq"], expected_seq, prev)
                expected_seq += 1
                if entry["seq"] != expected_seq:
                    problems.append(f"journal seq {entry['seq']}: expected {expected_seq} (an entry is missing or was inserted)")
                    expected_seq = entry["seq"]
                if entry["prev_hash"] != prev:
                    problems.append(f"journal seq {entry['seq']}: prev_hash does not match the previous entry's hash")
                if entry_hash(entry["prev_hash"], entry) != entry["entry_hash"]:
                    problems.append(f"journal seq {entry['seq']} (instruction {entry['instruction_id']}): entry hash mismatch: the row was edited")
                prev = entry["entry_hash"]
                stored = bodies.pop(entry["instruction_id"], None)
                if stored is None:
                    problems.append(f"journal seq {entry['seq']}: instruction {entry['instruction_id']} is missing")
                    continue
                body = json.loads(stored.body)
                if sha256_hex(canonical_json(body)) != stored.content_hash or stored.content_hash != entry["instruction_hash"]:
                    problems.append(f"instruction {entry['instruction_id']}: content does not match the hash in journal seq {entry['seq']}: the row was edited")
                if abs(int(stored.amount_fen)) != int(entry["amount_fen"]) or _stored_amount(body) != int(stored.amount_fen):
                    problems.append(f"instruction {entry['instruction_id']}: amount differs from journal seq {entry['seq']}")
            expected_seq, prev = events.check_before(None, expected_seq, prev)
            for iid in bodies:
                problems.append(f"instruction {iid} has no journal entry")
            head = conn.execute(sa.select(chain_head.c.seq, chain_head.c.head_hash)).one()
            if (int(head.seq), head.head_hash) != (expected_seq, prev):
                problems.append(f"chain head (seq {head.seq}) does not match the last journal entry (seq {expected_seq}): entries were removed or added")
        return problems


class _PaymentEvents:
    """The chain entries of ``ledger_chain_events``, checked in their places among the journal's."""

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

    def check_before(self, seq: int | None, expected_seq: int, prev: str) -> tuple[int, str]:
        """Check the events before journal seq ``seq`` (all that are left when None)."""
        while self.pending and (seq is None or self.pending[0].seq < seq):
            event = self.pending.popleft()
            where = f"chain seq {event.seq} ({event.kind} of batch {event.batch_id})"
            expected_seq += 1
            if event.seq != expected_seq:
                self.problems.append(f"{where}: expected seq {expected_seq} (an entry is missing or was inserted)")
                expected_seq = event.seq
            if event.prev_hash != prev:
                self.problems.append(f"{where}: prev_hash does not match the previous entry's hash")
            if chain_event_hash(event.prev_hash, event.seq, event.kind, event.batch_id, event.actor, event.content_hash) != event.entry_hash or sha256_hex(event.body) != event.content_hash:
                self.problems.append(f"{where}: entry hash mismatch: the row was edited")
            prev = event.entry_hash
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
        if seq is None:  # rows the chain never recorded: added behind the ledger's back
            self.problems.extend(f"batch {batch_id} has no proposal in the hash chain: it was added" for batch_id in self.headers)
            self.problems.extend(f"the approval of batch {batch_id} by {approver} is not in the hash chain: it was added" for batch_id, approver in sorted(self.approvals))
        return expected_seq, prev
