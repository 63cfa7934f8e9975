"""Verification of the ledger: the journal's hash chain and every stored instruction's content
hash recomputed, so that a row edited or removed behind the ledger's back is found."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from rules.money import AmountError, parse_amount
from sinks.ledger.booking import canonical_json, entry_hash, sha256_hex
from sinks.ledger.database import LedgerDatabase
from sinks.ledger.schema import GENESIS_HASH, chain_head, instructions_t, journal


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
            for row in conn.execute(sa.select(journal).order_by(journal.c.seq)):
                entry = dict(row._mapping)
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
            for iid in bodies:
                problems.append(f"instruction {iid} has no journal entry")
            head = conn.execute(sa.select(chain_head.c.seq, chain_head.c.head_hash)).one()
            if (int(head.seq), head.head_hash) != (expected_seq, prev):
                problems.append(f"chain head (seq {head.seq}) does not match the last journal entry (seq {expected_seq}): entries were removed or added")
        return problems
