"""The records the pipeline writes on its own topics, read back, and the dead letter of one it
cannot read.

Any client can write to ``subsidy-claims`` and to the state changelog. A record there that is
not what the intake agent (claims) or ``TxnTable.apply_writes`` (changelog) wrote is a poison
pill: a claims record that was not JSON made decide raise at every redelivery (the worker
exited 71 at each restart), one whose values the ledger cannot book stopped it with 70, and a
changelog record that was not JSON held up the restore. The readers here say why a record is
unreadable (:class:`Unreadable`, one line a person can act on); the worker then writes the
record's :func:`dead_letter` to ``subsidy-dead-letters`` and goes on (streams/stages.py,
streams/state.py).

Pure: no Kafka, no database.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import re
import types
import uuid
from dataclasses import dataclass, fields
from typing import Any, Callable, get_args, get_origin, get_type_hints

import pydantic_core

from rules.intake import Claim
from schemas.inputs import INPUT_TOPICS, PAYMENT_VOIDS_TOPIC

#: how much of a record's key and value a dead letter carries: with base64, the other fields and
#: its Kafka key, a dead letter stays under 250 KB, well within Kafka's default 1 MiB record limit
DEAD_LETTER_BYTES = 64 * 1024

CLAIMS_ADVICE = ("skipped, not decided: only the pipeline's intake writes subsidy-claims, so find the client that wrote "
                 "this record (its key and time are in its dead letter) and stop it; an input it stands for must be "
                 "published again to its input topic")
CHANGELOG_ADVICE = ("skipped, the state was restored without it: only the decide agent writes the state changelog, so find "
                    "the client that wrote this record (its key and time are in its dead letter) and stop it")

_DEAD_LETTER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:chengdu-ai-subsidy:subsidy-dead-letters:v1")
_RECORD_FIELDS = frozenset({"claim", "origin", "ts"})
_ORIGIN_FIELDS = frozenset({"topic", "partition", "offset", "key", "raw"})
#: an origin whose raw holds only the first 64 KiB of a larger input also has the whole input's
#: length and SHA-256 (intake's bounded claim records: schemas/outputs.py kept_original, main)
_CUT_ORIGIN_FIELDS = _ORIGIN_FIELDS | {"length", "sha256"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PARTY_FIELDS = frozenset({"id", "kind", "name"})
#: the topics intake makes claims of: the contract's inputs, and operators' voids of payments
_CLAIM_TOPICS = frozenset({*INPUT_TOPICS, PAYMENT_VOIDS_TOPIC})
#: what a void's claim carries of the payment it voids (rules/intake.py ``void_claim``)
_VOIDS_FIELDS = frozenset({"instruction_id", "source", "event_id", "operator", "reason"})


class Unreadable(Exception):
    """A record of one of our own topics that is not what the pipeline writes there."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """One record of ``subsidy-claims``: the claim, the input it came from, the input's broker time."""

    claim: Claim
    origin: dict[str, Any]  # topic, partition, offset, key and raw (both base64) of the input
    origin_key: bytes | None
    ts: float | None


def claim_record(claim: Claim, origin: dict[str, Any], ts: float | None) -> bytes:
    """The value intake writes to ``subsidy-claims`` (keyed by ``Policy.claims_key(claim.clause_id)``), in the
    pipeline's JSON form (``streams.state.compact_json``, which is this call)."""
    return pydantic_core.to_json({"claim": claim.to_dict(), "origin": origin, "ts": ts})


def _allowed_types(hint: Any) -> tuple[type, ...]:
    options = get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return tuple(get_origin(option) or option for option in options)


#: each field of a Claim -> the JSON types it may hold (``int | None`` -> (int, NoneType))
_CLAIM_TYPES = {f.name: _allowed_types(get_type_hints(Claim)[f.name]) for f in fields(Claim)}


def unreadable_claim(problem: str) -> Unreadable:
    """Why a ``subsidy-claims`` record cannot be read: ``problem``, and what to do."""
    return Unreadable(f"not a claim record of the intake agent: {problem}; {CLAIMS_ADVICE}")


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _base64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise unreadable_claim(f"{what} is {type(value).__name__}, not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise unreadable_claim(f"{what} is not base64") from None


def _json_problem(value: bytes | None) -> tuple[Any, str]:
    """(the JSON value of ``value``, "") or (None, why it has none)."""
    if value is None:
        return None, "it has no value"
    try:
        return json.loads(value), ""
    except RecursionError:
        return None, "JSON nested too deeply"
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except ValueError as exc:
        return None, f"not JSON ({exc})"


def read_claim_record(key: bytes | None, value: bytes | None, claims_key: Callable[[str], str] = str) -> ClaimRecord:
    """A ``subsidy-claims`` record as intake wrote it, or :class:`Unreadable`.

    Checks what deciding and booking rely on: a JSON object of exactly intake's fields, an
    origin the rejection record can name, a claim ``Claim.from_dict`` takes with every field of
    its type, an ``occurred_at`` the ledger can date, and the key intake gives it (``claims_key`` of
    its clause, ``Policy.claims_key``: a claim on another partition would be decided against caps
    that are not there)."""
    body, problem = _json_problem(value)
    if problem:
        raise unreadable_claim(problem)
    if not isinstance(body, dict):
        raise unreadable_claim(f"a JSON {type(body).__name__}, not an object")
    if body.keys() != _RECORD_FIELDS:
        raise unreadable_claim(f"its fields are {sorted(body)}, not {sorted(_RECORD_FIELDS)}")
    origin, fields_of_claim, ts = body["origin"], body["claim"], body["ts"]
    if not isinstance(origin, dict) or origin.keys() not in (_ORIGIN_FIELDS, _CUT_ORIGIN_FIELDS):
        raise unreadable_claim(f"origin is not an object of {sorted(_ORIGIN_FIELDS)} (and length and sha256 when raw is cut)")
    if origin["topic"] not in _CLAIM_TOPICS:
        raise unreadable_claim(f"origin.topic {str(origin['topic'])[:100]!r} is not an input topic")
    if not (_is_count(origin["partition"]) and _is_count(origin["offset"])):
        raise unreadable_claim("origin.partition and origin.offset are not whole numbers >= 0")
    origin_key = None if origin["key"] is None else _base64(origin["key"], "origin.key")
    raw = _base64(origin["raw"], "origin.raw")
    if "length" in origin and not (_is_count(origin["length"]) and origin["length"] > len(raw)
                                   and isinstance(origin["sha256"], str) and _SHA256.fullmatch(origin["sha256"])):
        raise unreadable_claim("origin.length and origin.sha256 are not the length (over raw's) and SHA-256 of a cut input")
    if ts is not None and not (type(ts) in (int, float) and math.isfinite(ts)):
        raise unreadable_claim("ts is not a number of seconds")
    if not isinstance(fields_of_claim, dict):
        raise unreadable_claim(f"claim is a JSON {type(fields_of_claim).__name__}, not an object")
    try:
        claim = Claim.from_dict(fields_of_claim)
    except TypeError as exc:
        raise unreadable_claim(f"Claim.from_dict refuses its claim ({exc})") from None
    for name, allowed in _CLAIM_TYPES.items():
        field_value = getattr(claim, name)
        if not isinstance(field_value, allowed) or (type(field_value) is bool and bool not in allowed):
            raise unreadable_claim(f"claim.{name} is a {type(field_value).__name__}")
    for role in ("beneficiary", "payee"):
        party = getattr(claim, role)
        if party.keys() != _PARTY_FIELDS or not all(isinstance(v, str) for v in party.values()):
            raise unreadable_claim(f"claim.{role} is not an object of text {sorted(_PARTY_FIELDS)}")
    if claim.voids is not None and (claim.voids.keys() != _VOIDS_FIELDS or not all(isinstance(v, str) for v in claim.voids.values())):
        raise unreadable_claim(f"claim.voids is not an object of text {sorted(_VOIDS_FIELDS)}")
    try:
        if dt.datetime.fromisoformat(claim.occurred_at).tzinfo is None:
            raise ValueError
        dt.date.fromisoformat(claim.day)
    except ValueError:
        raise unreadable_claim("claim.occurred_at or claim.day is not an ISO date and time with an offset") from None
    if key != claims_key(claim.clause_id).encode("utf-8"):
        raise unreadable_claim(f"its key is not the claims key of its clause ({claim.clause_id[:100]!r})")
    return ClaimRecord(claim, origin, origin_key, ts)


#: the key of intake's progress records on ``subsidy-claims`` (no clause id starts with "~")
PROGRESS_KEY = b"~input-progress"


def progress_record(progress: dict[tuple[str, int], str]) -> bytes:
    """The value of a progress record: for each input partition intake read, the latest
    ``occurred_at`` it read there (or the time it found the partition idle). Intake writes one to
    every claims partition after each batch, so decide knows how far every input has come."""
    by_topic: dict[str, dict[str, str]] = {}
    for (topic, partition), when in sorted(progress.items()):
        by_topic.setdefault(topic, {})[str(partition)] = when
    return pydantic_core.to_json({"progress": by_topic})


def read_progress_record(value: bytes | None) -> dict[tuple[str, int], dt.datetime]:
    """A progress record as intake wrote it, or :class:`Unreadable`."""
    body, problem = _json_problem(value)
    by_topic = body.get("progress") if isinstance(body, dict) and body.keys() == {"progress"} else None
    if problem or not isinstance(by_topic, dict):
        raise unreadable_claim(problem or 'a progress record is {"progress": {topic: {partition: time}}}')
    progress: dict[tuple[str, int], dt.datetime] = {}
    for topic, partitions in by_topic.items():
        if topic not in INPUT_TOPICS or not isinstance(partitions, dict):
            raise unreadable_claim(f"progress names {str(topic)[:100]!r}, not an input topic with its partitions")
        for partition, when in partitions.items():
            try:
                moment = dt.datetime.fromisoformat(when)
                if not partition.isdigit() or moment.tzinfo is None:
                    raise ValueError
            except (TypeError, ValueError):
                raise unreadable_claim(f"progress of {topic}[{str(partition)[:20]}] is not an ISO time with an offset") from None
            progress[topic, int(partition)] = moment
    return progress


def read_changelog_record(value: bytes | None) -> dict[str, dict]:
    """The writes of one state changelog record as ``TxnTable.apply_writes`` wrote it
    (``{"w": {state key: state value (an object), ...}}``, at least one), or :class:`Unreadable`."""
    body, problem = _json_problem(value)
    writes = body.get("w") if isinstance(body, dict) and body.keys() == {"w"} else None
    if not (isinstance(writes, dict) and writes and all(isinstance(v, dict) for v in writes.values())):
        problem = problem or 'not an object {"w": {key: object, ...}} with at least one key'
        raise Unreadable(f"not a state record of the decide agent: {problem}; {CHANGELOG_ADVICE}")
    return writes


def _bounded(data: bytes | None) -> tuple[str | None, int | None]:
    """Base64 of the first DEAD_LETTER_BYTES of ``data``, and its whole length."""
    if data is None:
        return None, None
    return base64.b64encode(data[:DEAD_LETTER_BYTES]).decode("ascii"), len(data)


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The Kafka key of a dead letter: its record's key, cut like the value it carries."""
    return None if key is None else key[:DEAD_LETTER_BYTES]


def dead_letter(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                timestamp: dt.datetime | None, reason: str, now: dt.datetime) -> dict[str, Any]:
    """The ``subsidy-dead-letters`` record of a record that cannot be read: where it was, what it
    held (at most DEAD_LETTER_BYTES of key and of value, with their lengths and the value's
    SHA-256), why it was skipped, and when. The same record at the same place always gets the
    same ``dead_letter_id``, however often it is read."""
    digest = None if value is None else hashlib.sha256(value).hexdigest()
    key_text, key_length = _bounded(key)
    value_text, value_length = _bounded(value)
    return {
        "dead_letter_id": uuid.uuid5(_DEAD_LETTER_NAMESPACE, f"{topic}\x1f{partition}\x1f{offset}\x1f{digest}").hex,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": None if timestamp is None else timestamp.isoformat(),
        "key": key_text,
        "key_length": key_length,
        "value": value_text,
        "value_length": value_length,
        "value_sha256": digest,
        "reason": reason,
        "dead_lettered_at": now.isoformat(),
    }
