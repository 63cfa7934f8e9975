"""The pipeline's logic: intake and decide as plain classes, with no Kafka and no Faust.

    input topics ──IntakeStage──▶ subsidy-claims (key: clause) ──DecideStage──▶ subsidy-decisions (key: payee)
      (raw bytes)     │                                               ├──▶ disbursement-instructions (key: payee)
                      └──▶ subsidy-rejections                         ├──▶ subsidy-rejections, subsidy-dead-letters
                                                                      └──▶ the state changelog (one record per claim)

Each stage takes a batch of :class:`Record` and returns a :class:`StageBatch`: the records to
send and the decisions, instructions and rejections to book, in processing order. Taking a batch
is one synchronous call, so a batch is queued whole or not at all; the checkpoint
(streams/checkpoint.py) then delivers and books it before the batch is acknowledged.
streams/app.py is the Faust adapter that feeds the stages.

Every id is deterministic: a claim carries its input's event id, decision and instruction ids
are uuid5(policy, clause, source, event), a rejection's id is a digest of its input's topic,
partition, offset and bytes, and a dead letter's of its record's. The engine remembers every
decided claim in the state, so a redelivered claim re-emits the stored decision and
instructions byte for byte instead of deciding again.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from rules.engine import Engine, Outcome, claim_key
from rules.intake import Rejected, intake
from rules.policy import Policy
from rules.records import Decision, Instruction
from schemas.outputs import kept_key, kept_original, rejection_record
from streams.metrics import METRICS
from streams.own_records import Unreadable, claim_record, dead_letter, dead_letter_key, read_claim_record, unreadable_claim
from streams.stage_outputs import StageOutputs
from streams.state import ClaimWrites, PartitionView, compact_json
from streams.topics import CLAIMS_TOPIC, DEAD_LETTERS_TOPIC, DECISIONS_TOPIC, INSTRUCTIONS_TOPIC, REJECTIONS_TOPIC

log = logging.getLogger("streams")

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True, slots=True)
class Record:
    """One record a stage reads, as the broker gave it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None  # the broker's, in seconds since the epoch


class StageBatch:
    """What one batch of intake or decide gives the topics and the ledger, in processing order."""

    __slots__ = ("outputs", "decisions", "instructions", "rejections", "fresh_instructions", "stamps")

    def __init__(self) -> None:
        self.outputs = StageOutputs()
        self.decisions: list[Decision] = []
        self.instructions: list[Instruction] = []
        self.rejections: list[dict[str, Any]] = []
        self.fresh_instructions: list[Instruction] = []  # not re-emitted duplicates: what the metrics count as granted
        self.stamps: list[float] = []  # input timestamps, for the latency metric

    def to_book(self) -> bool:
        """Whether the batch has anything for the ledger (claims and dead letters alone do not)."""
        return bool(self.decisions or self.rejections)

    def emit(self, decisions: list[Decision], instructions: list[Instruction], rejections: list[dict[str, Any]],
             origin_key: bytes | None, ts: float | None, duplicate: bool = False) -> None:
        """Queue one claim's (or one input's) outputs and add them to what the batch books.
        Synchronous on purpose: no await, so no half-sent claim."""
        put = self.outputs.put
        for d in decisions:
            put(DECISIONS_TOPIC, d.payee.id.encode(), compact_json(d.to_wire()))
            METRICS.decisions.inc(d.outcome)
        for i in instructions:
            put(INSTRUCTIONS_TOPIC, i.payee.id.encode(), compact_json(i.to_wire()))
        for r in rejections:
            put(REJECTIONS_TOPIC, origin_key, compact_json(r))
        self.decisions += decisions
        self.instructions += instructions
        self.rejections += rejections
        if not duplicate:
            self.fresh_instructions += instructions
        if ts:
            self.stamps.append(ts)


class StageFailed(Exception):
    """A record made a stage raise outside its own error handling: nothing of the batch may be
    acknowledged (the worker exits and the batch is read again, its ids unchanged)."""

    def __init__(self, record: Record, cause: BaseException):
        super().__init__(f"{cause!r} on {record.topic}[{record.partition}]@{record.offset}")
        self.record = record
        self.cause = cause


def short_error(exc: BaseException) -> str:
    """The exception and where it was raised, in one line (rejection reasons carry it)."""
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {os.path.basename(last[0].filename)}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:500]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def origin_of(record: Any, key: bytes | None, raw: bytes) -> dict[str, Any]:
    """Where a claim came from, as its ``subsidy-claims`` record carries it: enough for decide to
    build the rejection intake would have built. The bytes only up to what a rejection keeps
    (64 KiB, schemas/outputs.py), with the whole input's length and SHA-256 when they are cut, so
    that an input of 1 MiB does not make a claim record of 1.4 MiB."""
    kept = kept_original(raw)
    origin = {"topic": record.topic, "partition": record.partition, "offset": record.offset, "key": _b64(key), "raw": _b64(kept)}
    if len(kept) < len(raw):
        origin["length"], origin["sha256"] = len(raw), hashlib.sha256(raw).hexdigest()
    return origin


def rejection_of(origin: dict[str, Any], code: str, reason: str, now: dt.datetime) -> dict[str, Any]:
    """The rejection of the input ``origin`` names, counted."""
    record = rejection_record(
        origin["topic"], origin["partition"], origin["offset"], _unb64(origin.get("key")),
        _unb64(origin["raw"]) or b"", code, reason, now,
        original_length=origin.get("length"), original_sha256=origin.get("sha256"),
    )
    METRICS.rejections.inc(code)
    return record


def dead_lettered(record: Record, reason: str, now: dt.datetime) -> tuple[bytes | None, bytes]:
    """The dead letter of a record of our own topics that cannot be read (key, value), counted and logged."""
    broker_time = None if record.timestamp is None else dt.datetime.fromtimestamp(record.timestamp, dt.timezone.utc)
    letter = dead_letter(record.topic, record.partition, record.offset, record.key, record.value, broker_time, reason, now)
    METRICS.dead_letters.inc(record.topic)
    log.warning("%s[%s]@%s cannot be read; written to %s as %s: %s", record.topic, record.partition,
                record.offset, DEAD_LETTERS_TOPIC, letter["dead_letter_id"], reason)
    return dead_letter_key(record.key), compact_json(letter)


class IntakeStage:
    """Bytes of the four input topics -> claims keyed by clause on ``subsidy-claims``, or a rejection."""

    def __init__(self, policy: Policy, clock: Clock = utc_now):
        self.policy = policy
        self.clock = clock

    def take(self, records: Iterable[Record]) -> StageBatch:
        batch = StageBatch()
        for record in records:
            try:
                self._one(record, batch)
            except Exception as exc:
                raise StageFailed(record, exc) from exc
        return batch

    def _one(self, record: Record, batch: StageBatch) -> None:
        raw = record.value or b""
        key = kept_key(record.key)
        origin = origin_of(record, key, raw)
        METRICS.events_in.inc(record.topic)
        try:
            claims = intake(record.topic, raw, self.policy)
        except Rejected as exc:
            batch.emit([], [], [rejection_of(origin, exc.code, exc.reason, self.clock())], key, record.timestamp)
            return
        except Exception as exc:  # one bad message must never stop the worker
            log.exception("intake: unexpected error on %s[%s]@%s", record.topic, record.partition, record.offset)
            reason = f"the pipeline failed on this message ({short_error(exc)}); report it, then publish it again"
            batch.emit([], [], [rejection_of(origin, "internal-error", reason, self.clock())], key, record.timestamp)
            return
        for claim in claims:
            batch.outputs.put(CLAIMS_TOPIC, claim.clause_id.encode(), claim_record(claim, origin, record.timestamp))
            METRICS.claims.inc(claim.clause_id)


class ClaimState(Protocol):
    """The engine's running state, by partition of ``subsidy-claims`` (streams/state.py ``TxnTable``)."""

    def reader(self, partition: int) -> PartitionView: ...

    def apply_writes(self, partition: int, txn_key: str, writes: dict[str, Any], outputs: StageOutputs) -> None:
        """Make one claim's writes visible to the next claims and queue its changelog record in ``outputs``."""


class DecideStage:
    """Claims of one or more partitions of ``subsidy-claims`` -> decisions and instructions, each
    claim's state writes queued as one changelog record ahead of its outputs.

    Claims are decided in the order of the batch, each against the state the claims before it
    left. A batch's outputs need not be those of its own claims only: a stage that holds claims
    back (to decide them in event-time order) returns the claims it releases."""

    def __init__(self, policy: Policy, state: ClaimState, partition_of: Callable[[bytes], int], clock: Clock = utc_now):
        self.policy = policy
        self.state = state
        self.partition_of = partition_of  # where intake's producer puts a claim of this key
        self.clock = clock

    def take(self, records: Iterable[Record]) -> StageBatch:
        batch = StageBatch()
        for record in records:
            try:
                self._one(record, batch)
            except Exception as exc:
                raise StageFailed(record, exc) from exc
        return batch

    def _one(self, message: Record, batch: StageBatch) -> None:
        try:
            record = read_claim_record(message.key, message.value)
            intended = self.partition_of(record.claim.clause_id.encode())  # the record's key, read_claim_record checked
            if message.partition != intended:  # its clause's caps are in another partition's state
                raise unreadable_claim(f"it is on partition {message.partition}, but intake puts clause "
                                       f"{record.claim.clause_id[:100]!r} on {intended}")
        except Unreadable as exc:
            batch.outputs.put(DEAD_LETTERS_TOPIC, *dead_lettered(message, exc.reason, self.clock()))
            return
        claim = record.claim
        writes = ClaimWrites(self.state.reader(message.partition))  # type: ignore[arg-type]
        try:
            outcome = Engine(self.policy, writes).decide(claim)
        except Exception as exc:
            log.exception("decide: unexpected error on claim %s", claim.event_id)
            writes.writes.clear()
            outcome = Outcome(rejection=("internal-error", f"the pipeline failed on this claim ({short_error(exc)}); report it"))
        if writes.writes:
            self.state.apply_writes(message.partition, claim_key(claim.clause_id, claim.source, claim.event_id), writes.writes, batch.outputs)
        rejections = [rejection_of(record.origin, *outcome.rejection, self.clock())] if outcome.rejection else []
        if outcome.duplicate:
            METRICS.duplicates.inc()
        # a claim written before keys were bounded may hold a longer one
        batch.emit(outcome.decisions, outcome.instructions, rejections, kept_key(record.origin_key), record.ts, outcome.duplicate)
