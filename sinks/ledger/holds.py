"""Held payments (contract v1.1, ``payee-exclusions``; issue 25).

A payment of a listed payee is booked like any other (journal entry, cap charges): it was
decided, and its cap room is taken. A hold row says it may not be paid, naming the listing; a
release row, the day from which it may. Both are facts (append-only, migration 0002). Which
payment is held and when it is released is the pure rule's (``rules/exclusions.py``); here a
repeat with the same content is a no-op and with other content :class:`LedgerConflict`, as for
every record of the ledger.

The pipeline and ``subsidy replay`` book the listings of ``payee-exclusions`` with their batches
(``ledger_exclusion_listings``), and :func:`hold_in_booking` derives the holds in the booking
transaction, both ways: a payment booked while a known listing covers its claim's day is held; a
listing booked holds the booked payments it covers that are in no payment batch yet; and a hold
whose listings have ended is released from the day the rule gives. So the same listings and
payments give the same holds whichever came first. Limit (holds and releases are facts, never
rewritten): a hold names the listing the rule named when it was made, and a release stays once
made, so a second overlapping listing, or a listing extended after its payments' release was
recorded, changes nothing already recorded (README, "Held payments").

A hold decides whether a payment is made and a release from when, so each is covered by a fact of
the hash chain (sinks/ledger/chain.py): the booking transaction's one fact, or one of its own for
``hold()`` and ``release()``; ``subsidy ledger verify`` names a hold or a release edited, removed
or added behind the ledger's back.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rules.exclusions import Exclusions, Listing
from rules.money import format_fen
from sinks.ledger.booking import InvalidRecord, LedgerConflict, canonical_json, diff_paths, sha256_hex
from sinks.ledger.chain import RECORDS_BOOKED, append_fact, message_key, records_digest, release_hash, set_head
from sinks.ledger.database import LedgerDatabase
from sinks.ledger.payments import Payments
from sinks.ledger.schema import batch_items, exclusion_listings, hold_releases, holds_t, instructions_t


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


class Holds(Payments):
    """``hold()``, ``release()`` and ``holds()``, each in a transaction of its own, retried on connection loss
    (``Payments`` for the chain-head lock: a hold and a release take their places in the chain)."""

    def hold(self, instruction_id: str, listing: Listing, held_from: dt.date) -> bool:
        """Hold a booked payment from ``held_from`` (its claim's day) by ``listing``; False if it is held so already."""
        body, row = _hold_row(instruction_id, listing, held_from)

        def write() -> bool:
            with self.engine.begin() as conn:
                head = self._lock(conn)
                kind = conn.execute(sa.select(instructions_t.c.kind).where(instructions_t.c.instruction_id == instruction_id)).scalar_one_or_none()
                if kind != "payment":
                    raise InvalidRecord(f"instruction {instruction_id} is {'not in the ledger' if kind is None else 'a ' + kind}: only a booked payment is held")
                stored = conn.execute(sa.select(holds_t.c.content_hash, holds_t.c.body).where(holds_t.c.instruction_id == instruction_id)).first()
                if stored is not None:
                    if stored.content_hash != row["content_hash"]:
                        raise LedgerConflict("hold", instruction_id, diff_paths(json.loads(stored.body), body))
                    return False
                now = _now()
                conn.execute(holds_t.insert().values(**row, recorded_at=now, chain_seq=head[0] + 1))
                _chain_one(conn, head, "hold", instruction_id, row["content_hash"], now)
                return True

        return self._with_retry(write)[0]

    def release(self, instruction_id: str, released_on: dt.date) -> bool:
        """Release a held payment: it may be paid from ``released_on``; False if released so already."""
        day = released_on.isoformat()

        def write() -> bool:
            with self.engine.begin() as conn:
                head = self._lock(conn)
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
                now = _now()
                conn.execute(hold_releases.insert().values(instruction_id=instruction_id, released_on=day, recorded_at=now, chain_seq=head[0] + 1))
                _chain_one(conn, head, "release", instruction_id, release_hash(day), now)
                return True

        return self._with_retry(write)[0]

    def holds(self, *, released: bool = False) -> list[dict[str, Any]]:
        """The payments held today (with ``released``, also those released, or to be released on a
        later day), in the order they were held."""
        query = (
            sa.select(holds_t, hold_releases.c.released_on, instructions_t.c.payee_id, instructions_t.c.amount_fen, instructions_t.c.clause_id, instructions_t.c.fiscal_year)
            .join(instructions_t, instructions_t.c.instruction_id == holds_t.c.instruction_id)
            .outerjoin(hold_releases, hold_releases.c.instruction_id == holds_t.c.instruction_id)
            .order_by(holds_t.c.held_from, holds_t.c.instruction_id)
        )
        if not released:
            query = query.where(sa.or_(hold_releases.c.released_on.is_(None), hold_releases.c.released_on > self._today()))
        with self.engine.connect() as conn:
            return [
                {"instruction_id": row.instruction_id, "payee_id": row.payee_id, "clause_id": row.clause_id, "fiscal_year": row.fiscal_year,
                 "amount": format_fen(row.amount_fen), "listed_party": row.listed_party, "list": row.list, "reference": row.reference,
                 "held_from": row.held_from, "released_on": row.released_on}
                for row in conn.execute(query)
            ]

    def _today(self) -> str:
        return dt.datetime.now(self.zone or dt.timezone.utc).date().isoformat()

    def listings(self, payee_ids: Iterable[str] | None = None) -> Exclusions:
        """The listings booked (of these payees; default: all), each the newest message about it."""
        query = sa.select(exclusion_listings.c.body)
        if payee_ids is not None:
            query = query.where(exclusion_listings.c.payee_id.in_(list(payee_ids)))
        with self.engine.connect() as conn:
            return Exclusions(Listing.from_dict(json.loads(body)) for (body,) in conn.execute(query))


def _chain_one(conn: Connection, head: tuple[int, str], kind: str, instruction_id: str, content_hash: str, now: str) -> None:
    """The fact covering one hold or release made on its own (``kind``: "hold" | "release"), and the head moved to it."""
    set_head(conn, append_fact(conn, head, RECORDS_BOOKED, kind, "ledger", {f"{kind}s": [1, records_digest([(instruction_id, content_hash)])]}, now))


def _hold_row(instruction_id: str, listing: Listing, held_from: dt.date) -> tuple[dict[str, Any], dict[str, Any]]:
    body = {"listing": listing.to_dict(), "held_from": held_from.isoformat()}
    text = canonical_json(body)
    return body, {"instruction_id": instruction_id, "listed_party": listing.payee_id, "list": listing.list, "reference": listing.reference,
                  "held_from": held_from.isoformat(), "content_hash": sha256_hex(text), "body": text}


def parties_of(payment: dict[str, Any]) -> list[str]:
    """Whose listing holds a payment: its payee and, when another party is paid, its beneficiary."""
    return [payment["payee"]["id"], payment["beneficiary"]["id"]]


def hold_in_booking(db: LedgerDatabase, conn: Connection, listings: Sequence[Listing], payments: Sequence[tuple[str, list[str], str]], now: str,
                    chain_seq: int) -> dict[str, list[tuple[str, str]]]:
    """In the booking transaction: book the new ``listings``, then hold and release what they and
    the new ``payments`` ((instruction id, parties, claim day)) call for, all covered by the chain
    entry ``chain_seq``; the rows newly stored, for that entry's body: {"listings": [(``message_key``,
    content hash)], "holds": [(instruction id, content hash)], "releases": [(instruction id, :func:`release_hash`)]}.

    A listing repeated with the same content is a no-op, with other content :class:`LedgerConflict`."""
    stored = _book_listings(db, conn, listings, now, chain_seq)
    fresh = [listing for listing, _ in stored]
    parties = {party for _, payment_parties, _ in payments for party in payment_parties} | {listing.payee_id for listing in fresh}
    known = Exclusions(Listing.from_dict(json.loads(body)) for (body,) in db._select_in(conn, exclusion_listings, "body", "payee_id", parties))
    candidates = {iid: (payment_parties, day) for iid, payment_parties, day in payments if any(known.listings(p) for p in payment_parties)}
    listed = {listing.payee_id for listing in fresh}
    if listed:
        candidates.update(_unbatched_payments_of(conn, listed))
    covered = {"listings": [(message_key(listing.source, listing.event_id), sha256_hex(text)) for listing, text in stored], "holds": [], "releases": []}
    if not candidates:
        return covered
    held = {row.instruction_id for row in db._select_in(conn, holds_t, "instruction_id", "instruction_id", candidates)}
    released = {row.instruction_id for row in db._select_in(conn, hold_releases, "instruction_id", "instruction_id", candidates)}
    hold_rows: list[dict[str, Any]] = []
    release_rows: list[dict[str, Any]] = []
    for iid, (payment_parties, day) in sorted(candidates.items()):
        claim_day = dt.date.fromisoformat(day)
        if iid not in held:
            listing = known.hold(payment_parties, claim_day)
            if listing is None:
                continue
            hold_rows.append(_hold_row(iid, listing, claim_day)[1] | {"recorded_at": now, "chain_seq": chain_seq})
        if iid not in released and (payable := known.payable_from(payment_parties, claim_day)) is not None:
            release_rows.append({"instruction_id": iid, "released_on": payable.isoformat(), "recorded_at": now, "chain_seq": chain_seq})
    if hold_rows:
        conn.execute(holds_t.insert(), hold_rows)
        covered["holds"] = [(row["instruction_id"], row["content_hash"]) for row in hold_rows]
    if release_rows:
        conn.execute(hold_releases.insert(), release_rows)
        covered["releases"] = [(row["instruction_id"], release_hash(row["released_on"])) for row in release_rows]
    return covered


def _book_listings(db: LedgerDatabase, conn: Connection, listings: Sequence[Listing], now: str, chain_seq: int) -> list[tuple[Listing, str]]:
    """The listings newly stored, each with its text."""
    prepared: dict[tuple[str, str], tuple[Listing, str]] = {}
    for listing in listings:
        text = canonical_json(listing.to_dict())
        seen = prepared.setdefault((listing.source, listing.event_id), (listing, text))
        if seen[1] != text:
            raise LedgerConflict("listing", listing.event_id, diff_paths(json.loads(seen[1]), listing.to_dict()))
    if not prepared:
        return []
    stored = {(row.source, row.event_id): row.body for row in db._select_in(conn, exclusion_listings, "source, event_id, body", "event_id", {key[1] for key in prepared})}
    fresh = []
    for key, (listing, text) in prepared.items():
        if key not in stored:
            fresh.append(listing)
        elif stored[key] != text:
            raise LedgerConflict("listing", listing.event_id, diff_paths(json.loads(stored[key]), listing.to_dict()))
    if fresh:
        conn.execute(exclusion_listings.insert(), [{"source": listing.source, "event_id": listing.event_id, "payee_id": listing.payee_id, "list": listing.list, "reference": listing.reference,
         "starts": listing.starts.isoformat(), "ends": None if listing.ends is None else listing.ends.isoformat(), "occurred_at": listing.occurred_at,
         "content_hash": sha256_hex(text), "body": text, "recorded_at": now, "chain_seq": chain_seq}
            for listing, text in (prepared[(listing.source, listing.event_id)] for listing in fresh)])
    return [prepared[(listing.source, listing.event_id)] for listing in fresh]


def _unbatched_payments_of(conn: Connection, payee_ids: set[str]) -> dict[str, tuple[list[str], str]]:
    """Booked payments of these parties (as payee or as beneficiary) in no payment batch."""
    i = instructions_t
    # the beneficiary is in the body only: LIKE narrows, the parsed body decides (listings are few)
    mentions = [i.c.body.contains(f'"id":{canonical_json(party)}', autoescape=True) for party in sorted(payee_ids)]
    query = (sa.select(i.c.instruction_id, i.c.body, i.c.value_date)
             .where(i.c.kind == "payment", sa.or_(i.c.payee_id.in_(sorted(payee_ids)), *mentions))
             .where(~sa.exists().where(batch_items.c.instruction_id == i.c.instruction_id)))
    out = {}
    for row in conn.execute(query):
        parties = parties_of(json.loads(row.body))
        if payee_ids.intersection(parties):
            out[row.instruction_id] = (parties, row.value_date)
    return out
