"""Held payments (contract v1.1, ``payee-exclusions``; issue 25).

A payment of a listed payee is booked like any other (journal entry, cap charges): it was
decided, and its cap room is taken. A hold row says it may not be paid, naming the listing; a
release row, the day from which it may. Both are facts (append-only, migration 0002). Which
payment is held and when it is released is the pure rule's (``rules/exclusions.py``), applied by
the adapter that books; here a repeat with the same content is a no-op and with other content
:class:`LedgerConflict`, as for every record of the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from rules.exclusions import Listing
from rules.money import format_fen
from sinks.ledger.booking import InvalidRecord, LedgerConflict, canonical_json, diff_paths, sha256_hex
from sinks.ledger.database import LedgerDatabase
from sinks.ledger.schema import hold_releases, holds_t, instructions_t


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


class Holds(LedgerDatabase):
    """``hold()``, ``release()`` and ``holds()``, each in a transaction of its own, retried on connection loss."""

    def hold(self, instruction_id: str, listing: Listing, held_from: dt.date) -> bool:
        """Hold a booked payment from ``held_from`` (its claim's day) by ``listing``; False if it is held so already."""
        body = {"listing": listing.to_dict(), "held_from": held_from.isoformat()}
        text = canonical_json(body)
        row = {"instruction_id": instruction_id, "listed_party": listing.payee_id, "list": listing.list, "reference": listing.reference,
               "held_from": held_from.isoformat(), "content_hash": sha256_hex(text), "body": text}

        def write() -> bool:
            with self.engine.begin() as conn:
                kind = conn.execute(sa.select(instructions_t.c.kind).where(instructions_t.c.instruction_id == instruction_id)).scalar_one_or_none()
                if kind != "payment":
                    raise InvalidRecord(f"instruction {instruction_id} is {'not in the ledger' if kind is None else 'a ' + kind}: only a booked payment is held")
                stored = conn.execute(sa.select(holds_t.c.content_hash, holds_t.c.body).where(holds_t.c.instruction_id == instruction_id)).first()
                if stored is not None:
                    if stored.content_hash != row["content_hash"]:
                        raise LedgerConflict("hold", instruction_id, diff_paths(json.loads(stored.body), body))
                    return False
                conn.execute(holds_t.insert().values(**row, recorded_at=_now()))
                return True

        return self._with_retry(write)[0]

    def release(self, instruction_id: str, released_on: dt.date) -> bool:
        """Release a held payment: it may be paid from ``released_on``; False if released so already."""
        day = released_on.isoformat()

        def write() -> bool:
            with self.engine.begin() as conn:
                held_from = conn.execute(sa.select(holds_t.c.held_from).where(holds_t.c.instruction_id == instruction_id)).scalar_one_or_none()
                if held_from is None:
                    raise InvalidRecord(f"instruction {instruction_id} is not held: nothing to release")
                if day < held_from:
                    raise InvalidRecord(f"instruction {instruction_id} is held from {held_from}: it cannot be released on {day}, before that")
                stored = conn.execute(sa.select(hold_releases.c.released_on).where(hold_releases.c.instruction_id == instruction_id)).scalar_one_or_none()
                if stored is not None:
                    if stored != day:
                        raise LedgerConflict("release", instruction_id, ["released_on"])
                    return False
                conn.execute(hold_releases.insert().values(instruction_id=instruction_id, released_on=day, recorded_at=_now()))
                return True

        return self._with_retry(write)[0]

    def holds(self, *, released: bool = False) -> list[dict[str, Any]]:
        """The held payments (with ``released``, also those released), in the order they were held."""
        query = (
            sa.select(holds_t, hold_releases.c.released_on, instructions_t.c.payee_id, instructions_t.c.amount_fen, instructions_t.c.clause_id, instructions_t.c.fiscal_year)
            .join(instructions_t, instructions_t.c.instruction_id == holds_t.c.instruction_id)
            .outerjoin(hold_releases, hold_releases.c.instruction_id == holds_t.c.instruction_id)
            .order_by(holds_t.c.held_from, holds_t.c.instruction_id)
        )
        if not released:
            query = query.where(hold_releases.c.released_on.is_(None))
        with self.engine.connect() as conn:
            return [
                {"instruction_id": row.instruction_id, "payee_id": row.payee_id, "clause_id": row.clause_id, "fiscal_year": row.fiscal_year,
                 "amount": format_fen(row.amount_fen), "listed_party": row.listed_party, "list": row.list, "reference": row.reference,
                 "held_from": row.held_from, "released_on": row.released_on}
                for row in conn.execute(query)
            ]
