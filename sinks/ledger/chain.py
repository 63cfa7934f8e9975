"""The ledger's hash chain: one sequence of entries, each chained to the one before it, shared by
three kinds of row: journal entries (booking.py), the payments' events (payments.py,
``ledger_chain_events``) and every other fact that decides money (``ledger_chain_facts``).

:func:`append_fact` is how a fact of any kind takes its place in the chain: a booked batch's
decisions, rejections, exclusion listings and the holds and releases they call for, a hold or a
release made on its own (holds.py) (:data:`RECORDS_BOOKED`), and whatever kind a later change
adds (a bank's answer, an offset). The caller holds the chain-head lock (every writer takes
it first), appends, and moves the head with :func:`set_head` once per transaction.

A fact's body is stored as written and hashed; rows too many to copy into a body (a batch's
decisions) name the entry that covers them (``chain_seq``), and the body holds the digest of
their ids and content hashes (:func:`records_digest`), so verification.py finds a row edited,
removed or added behind the ledger's back. WHY one chain, one fact a batch:
docs/decisions/0013-signed-checkpoints-of-one-hash-chain.md.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy.engine import Connection

from sinks.ledger.booking import _SET_HEAD, canonical_json, sha256_hex
from sinks.ledger.schema import chain_facts

#: the fact a booked batch appends: {"decisions" | "rejections" | "listings" | "holds" | "releases":
#: [count, digest]}; payee accounts imported (payments.py) append one too: {"accounts": [count,
#: digest]}, and so does a hold or a release made on its own (holds.py)
RECORDS_BOOKED = "records-booked"
#: the one fact migration 0009 appended for the rows stored before it (they name no chain entry)
RECORDS_BEFORE_CHAIN = "records-before-0008"
#: the one fact migration 0010 appended for the holds and releases stored before it
HOLDS_BEFORE_CHAIN = "holds-before-0010"
#: the tables whose rows a RECORDS_BOOKED fact covers, by the name its body gives them
COVERED_TABLES = {"decisions": "ledger_decisions", "rejections": "ledger_rejections", "listings": "ledger_exclusion_listings", "accounts": "ledger_payee_accounts",
                  "holds": "ledger_holds", "releases": "ledger_hold_releases"}
#: the fact that covers a table's rows stored before its rows named one (``chain_seq`` NULL), by the name a fact's body gives the table
COVERED_BEFORE_CHAIN = {name: HOLDS_BEFORE_CHAIN if name in ("holds", "releases") else RECORDS_BEFORE_CHAIN for name in COVERED_TABLES}


def fact_hash(prev_hash: str, seq: int, kind: str, subject: str, actor: str, content_hash: str) -> str:
    """A fact's place in the chain (the journal entries' form: the previous hash, then the fields)."""
    return sha256_hex(prev_hash + "\n" + canonical_json((seq, "fact", kind, subject, actor, content_hash)))


def message_key(source: str, event_id: str) -> str:
    """The id in the chain of a row whose primary key is a message's (source, event id): a listing, an account."""
    return canonical_json([source, event_id])


def release_hash(released_on: str) -> str:
    """The content hash of a hold's release, which stores none: its day is all it says."""
    return sha256_hex(canonical_json({"released_on": released_on}))


def records_digest(rows: Iterable[tuple[str, str]]) -> str:
    """Digest of rows covered by one fact: (id, content hash) pairs, in any order."""
    return sha256_hex(canonical_json(sorted([list(row) for row in rows])))


def append_fact(conn: Connection, head: tuple[int, str], kind: str, subject: str, actor: str, body: dict[str, Any], now: str) -> tuple[int, str]:
    """Append one fact of any ``kind`` after ``head`` (seq, hash), under the chain-head lock the
    caller holds; returns the new head, which the caller stores with :func:`set_head`."""
    seq, prev = head[0] + 1, head[1]
    text = canonical_json(body)
    content_hash = sha256_hex(text)
    digest = fact_hash(prev, seq, kind, subject, actor, content_hash)
    conn.execute(chain_facts.insert(), {"seq": seq, "kind": kind, "subject": subject, "actor": actor, "body": text,
                                        "content_hash": content_hash, "prev_hash": prev, "entry_hash": digest, "recorded_at": now})
    return seq, digest


def set_head(conn: Connection, head: tuple[int, str]) -> None:
    conn.execute(_SET_HEAD, {"seq": head[0], "head_hash": head[1]})
