"""Payee exclusions (contract v1.1, ``payee-exclusions``): whom the credit system lists, and so
which instructions wait.

A claim of a listed payee is still decided (its cap room is taken as for anyone), but its
instruction is held, naming the listing, until the listing ends. This module is the pure part:
the listings known so far, and for an instruction whether it may be paid on a day and, if not,
which listing holds it and from which day it may. Pure: no Kafka, no database; the listings are
plain JSON-able records, so an adapter can keep them in any store.

Assumptions (the contract says only "``from`` (date), optional ``to`` (date)"): both days are in
the listing, so a held instruction is payable from the day after ``to``; dates are days of the
policy's time zone. A later message about the same listing (same payee, ``list`` and
``reference``) replaces an earlier one, later by ``occurred_at`` then ``event_id``, so whatever the
order they arrive in, the same messages give the same listings (a listing lifted early is a new
message with an earlier ``to``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from rules.inputs import EXCLUSIONS_TOPIC, PayeeExclusion, party_id
from rules.intake import Rejected, parse_as
from rules.policy import Policy


@dataclass(frozen=True, slots=True)
class Listing:
    payee_id: str
    list: str  # e.g. dishonest-judgment-debtor (失信被执行人), debarred
    reference: str  # the listing's document number
    starts: dt.date
    ends: dt.date | None  # the last day listed; None: until a later message ends it
    source: str
    event_id: str
    occurred_at: str  # RFC 3339: orders the messages about one listing

    def covers(self, day: dt.date) -> bool:
        return self.starts <= day and (self.ends is None or day <= self.ends)

    @property
    def released_on(self) -> dt.date | None:
        """The first day after the listing, or None while it has no end."""
        return None if self.ends is None else self.ends + dt.timedelta(days=1)

    @property
    def named(self) -> str:
        """The listing as a person reads it in a held payment's reason."""
        until = f"to {self.ends}" if self.ends is not None else "with no end yet"
        return f"{self.list} {self.reference} (from {self.starts} {until})"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["starts"] = self.starts.isoformat()
        data["ends"] = None if self.ends is None else self.ends.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Listing":
        ends = data["ends"]
        return cls(**{**data, "starts": dt.date.fromisoformat(data["starts"]), "ends": None if ends is None else dt.date.fromisoformat(ends)})


def listing_from(raw: bytes, policy: Policy) -> Listing:
    """Bytes of one ``payee-exclusions`` message -> its listing, or ``Rejected`` (as intake does)."""
    message = parse_as(PayeeExclusion, raw)
    allowed = policy.sources.get(EXCLUSIONS_TOPIC, frozenset())
    if message.source not in allowed:
        raise Rejected(
            "unknown-source",
            f"source {message.source!r} may not publish to {EXCLUSIONS_TOPIC}; allowed: {', '.join(sorted(allowed)) or 'none'}",
        )
    return Listing(
        payee_id=party_id(message.beneficiary),
        list=message.listing,
        reference=message.reference,
        starts=message.starts,
        ends=message.ends,
        source=message.source,
        event_id=message.event_id,
        occurred_at=message.occurred_at.isoformat(),
    )


def _newer(listing: Listing) -> tuple[dt.datetime, str]:
    return dt.datetime.fromisoformat(listing.occurred_at), listing.event_id


def _holds_longer(listing: Listing) -> tuple[bool, dt.date, str, str]:
    """Orders the listings holding one payment: the one that ends last (no end: last of all) names the hold."""
    return listing.ends is None, listing.ends or dt.date.min, listing.list, listing.reference


class Exclusions:
    """The listings known so far, by payee."""

    def __init__(self, listings: Iterable[Listing] = ()) -> None:
        self._by_payee: dict[str, dict[tuple[str, str], Listing]] = {}
        for listing in listings:
            self.add(listing)

    def add(self, listing: Listing) -> bool:
        """Learn a listing; False when a message about it that is at least as new is known already."""
        known = self._by_payee.setdefault(listing.payee_id, {})
        key = (listing.list, listing.reference)
        current = known.get(key)
        if current is not None and _newer(current) >= _newer(listing):
            return False
        known[key] = listing
        return True

    def listings(self, payee_id: str) -> list[Listing]:
        return sorted(self._by_payee.get(payee_id, {}).values(), key=lambda listing: (listing.starts, listing.list, listing.reference))

    def hold(self, party_ids: Iterable[str], claim_day: dt.date, on: dt.date | None = None) -> Listing | None:
        """The listing that holds, on day ``on`` (default: the claim's day), a payment to these
        parties for a claim of ``claim_day``; None when it may be paid.

        A payment is held by a listing of one of its parties that covered the claim's day and has
        not ended by ``on``, or that covers ``on`` itself (a payee is never paid while listed).
        Of several, the one that holds longest is named."""
        on = claim_day if on is None else on
        holding = [
            listing
            for party in dict.fromkeys(party_ids)  # a payee that is its own beneficiary counts once
            for listing in self._by_payee.get(party, {}).values()
            if listing.covers(on) or (listing.covers(claim_day) and (listing.ends is None or on <= listing.ends))
        ]
        return max(holding, key=_holds_longer) if holding else None

    def payable_from(self, party_ids: Iterable[str], claim_day: dt.date) -> dt.date | None:
        """The first day from the claim's day on which the payment is not held, as far as the
        listings known so far tell; None while a listing that holds it has no end."""
        parties = list(dict.fromkeys(party_ids))
        day = claim_day
        while (listing := self.hold(parties, claim_day, day)) is not None:
            if listing.released_on is None:
                return None
            day = listing.released_on  # strictly later each time: the loop ends
        return day
