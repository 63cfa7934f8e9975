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
from rules.event_time import EventTimeOrder, Input, order_key, released_key
from rules.exclusions import Listing, listing_from
from rules.inputs import EXCLUSIONS_TOPIC, PAYEE_ACCOUNTS_TOPIC, PAYMENT_STATUS_TOPIC, PAYMENT_VOIDS_TOPIC
from rules.intake import Rejected, intake
from rules.payee_accounts import account_from
from rules.payment_status import StatusMessage, status_from
from rules.policy import Policy
from rules.records import Decision, Instruction
from schemas.outputs import kept_key, kept_original, rejection_id, rejection_record
from streams.metrics import METRICS
from streams.own_records import (
    PROGRESS_KEY,
    ClaimRecord,
    Unreadable,
    claim_record,
    dead_letter,
    dead_letter_key,
    progress_record,
    read_claim_record,
    read_progress_record,
    unreadable_claim,
)
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

    __slots__ = ("outputs", "decisions", "instructions", "rejections", "listings", "accounts", "statuses", "refused_statuses", "fresh_instructions", "stamps", "held", "released")

    def __init__(self) -> None:
        self.outputs = StageOutputs()
        # decide's claims kept past this batch (not to be acknowledged with it), and the claims of
        # earlier batches it decided (to be acknowledged once this batch is committed)
        self.held: list[Record] = []
        self.released: list[Record] = []
        self.decisions: list[Decision] = []
        self.instructions: list[Instruction] = []
        self.rejections: list[dict[str, Any]] = []
        self.listings: list[Listing] = []  # of payee-exclusions: the ledger holds payments by them
        self.accounts: list[dict[str, Any]] = []  # of payee-accounts: where the ledger's payments go (rules/payee_accounts.py)
        self.statuses: list[StatusMessage] = []  # of payment-status: the bank's answers, which the ledger judges and books
        # the rejections of the statuses the ledger refused, known once the batch is booked (streams/checkpoint.py)
        self.refused_statuses: list[dict[str, Any]] = []
        self.fresh_instructions: list[Instruction] = []  # not re-emitted duplicates: what the metrics count as granted
        self.stamps: list[float] = []  # input timestamps, for the latency metric

    def to_book(self) -> bool:
        """Whether the batch has anything for the ledger (claims and dead letters alone do not)."""
        return bool(self.decisions or self.rejections or self.listings or self.accounts or self.statuses)

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
    record = uncounted_rejection_of(origin, code, reason, now)
    METRICS.rejections.inc(code)
    return record


def uncounted_rejection_of(origin: dict[str, Any], code: str, reason: str, now: dt.datetime) -> dict[str, Any]:
    """The rejection of the input ``origin`` names (the ledger's thread builds a payment-status's;
    the checkpoint counts it when it publishes it)."""
    return rejection_record(
        origin["topic"], origin["partition"], origin["offset"], _unb64(origin.get("key")),
        _unb64(origin["raw"]) or b"", code, reason, now,
        original_length=origin.get("length"), original_sha256=origin.get("sha256"),
    )


def dead_lettered(record: Record, reason: str, now: dt.datetime) -> tuple[bytes | None, bytes]:
    """The dead letter of a record of our own topics that cannot be read (key, value), counted and logged."""
    broker_time = None if record.timestamp is None else dt.datetime.fromtimestamp(record.timestamp, dt.timezone.utc)
    letter = dead_letter(record.topic, record.partition, record.offset, record.key, record.value, broker_time, reason, now)
    METRICS.dead_letters.inc(record.topic)
    log.warning("%s[%s]@%s cannot be read; written to %s as %s: %s", record.topic, record.partition,
                record.offset, DEAD_LETTERS_TOPIC, letter["dead_letter_id"], reason)
    return dead_letter_key(record.key), compact_json(letter)


class IntakeStage:
    """Bytes of the four input topics, and of ``payment-voids`` (an operator's void, a claim of the
    payment's clause) -> claims keyed by clause on ``subsidy-claims``, or a rejection;
    of ``payee-exclusions`` -> a listing for the ledger (``StageBatch.listings``), of
    ``payee-accounts`` -> an account for the ledger (``StageBatch.accounts``), of ``payment-status``
    -> a bank's answer for the ledger (``StageBatch.statuses``), or a rejection.

    After each batch it tells every claims partition how far it has read each input partition
    (the latest ``occurred_at`` read there): decide releases a claim only once every input has
    come past it (rules/event_time.py)."""

    def __init__(self, policy: Policy, claims_partitions: int, clock: Clock = utc_now, check_clock_skew: bool = True):
        self.policy = policy
        self.claims_partitions = claims_partitions
        self.clock = clock
        # against the broker's time of receipt; not for history being loaded (a backfill), whose
        # events may be dated after the day it is loaded
        self.check_clock_skew = check_clock_skew
        self.read_up_to: dict[Input, dt.datetime] = {}

    def take(self, records: Iterable[Record]) -> StageBatch:
        batch = StageBatch()
        moved: dict[Input, dt.datetime] = {}
        for record in records:
            try:
                latest = self._one(record, batch)
            except Exception as exc:
                raise StageFailed(record, exc) from exc
            source = (record.topic, record.partition)
            if latest is not None and (source not in self.read_up_to or latest > self.read_up_to[source]):
                self.read_up_to[source] = moved[source] = latest
        if moved:
            self.report(batch.outputs, moved)  # after the claims: each claims partition reads them first
        return batch

    def report(self, outputs: StageOutputs, progress: dict[Input, dt.datetime]) -> None:
        """Queue a progress record for every claims partition."""
        value = progress_record({source: moment.isoformat() for source, moment in progress.items()})
        for partition in range(self.claims_partitions):
            outputs.put(CLAIMS_TOPIC, PROGRESS_KEY, value, partition)

    def _one(self, record: Record, batch: StageBatch) -> dt.datetime | None:
        """Queue the record's claims or its rejection; the latest ``occurred_at`` of its claims."""
        raw = record.value or b""
        key = kept_key(record.key)
        origin = origin_of(record, key, raw)
        METRICS.events_in.inc(record.topic)
        try:
            if record.topic == EXCLUSIONS_TOPIC:  # no claim, so nothing for the watermark
                batch.listings.append(listing_from(raw, self.policy))
                return None
            if record.topic == PAYEE_ACCOUNTS_TOPIC:  # no claim either
                batch.accounts.append(account_from(raw, self.policy))
                return None
            if record.topic == PAYMENT_STATUS_TOPIC:  # no claim; whether it fits a payment sent, the ledger judges
                batch.statuses.append(status_from(raw, self.policy, key, rejection_id(record.topic, record.partition, record.offset, raw),
                                                  lambda code, reason: uncounted_rejection_of(origin, code, reason, self.clock())))
                return None
            received_at = None
            if self.check_clock_skew and record.timestamp is not None:
                received_at = dt.datetime.fromtimestamp(record.timestamp, dt.timezone.utc)
            claims = intake(record.topic, raw, self.policy, received_at)
        except Rejected as exc:
            batch.emit([], [], [rejection_of(origin, exc.code, exc.reason, self.clock())], key, record.timestamp)
            return None
        except Exception as exc:  # one bad message must never stop the worker
            log.exception("intake: unexpected error on %s[%s]@%s", record.topic, record.partition, record.offset)
            reason = f"the pipeline failed on this message ({short_error(exc)}); report it, then publish it again"
            batch.emit([], [], [rejection_of(origin, "internal-error", reason, self.clock())], key, record.timestamp)
            return None
        for claim in claims:
            # keyed by project group or clause: docs/decisions/0012-claims-keyed-by-funding-group.md
            batch.outputs.put(CLAIMS_TOPIC, self.policy.claims_key(claim.clause_id).encode(), claim_record(claim, origin, record.timestamp))
            METRICS.claims.inc(claim.clause_id)
        if record.topic == PAYMENT_VOIDS_TOPIC:  # decide's watermark does not wait for voids (streams/topics.py), so no progress
            return None
        return max((dt.datetime.fromisoformat(claim.occurred_at) for claim in claims), default=None)


class ClaimState(Protocol):
    """The engine's running state, by partition of ``subsidy-claims`` (streams/state.py ``TxnTable``)."""

    def reader(self, partition: int) -> PartitionView: ...

    def apply_writes(self, partition: int, txn_key: str, writes: dict[str, Any], outputs: StageOutputs) -> None:
        """Make one claim's writes visible to the next claims and queue its changelog record in ``outputs``."""


#: a held claim: (clause, source, event_id, fingerprint) -> its record and what it carries
HeldClaims = dict[tuple[str, str, str, str], tuple[Record, ClaimRecord]]


class DecideStage:
    """Claims of one or more partitions of ``subsidy-claims`` -> decisions and instructions, each
    claim's state writes queued as one changelog record ahead of its outputs.

    Within a clause, claims take budget in event-time order, not in order of arrival: each
    partition's ``EventTimeOrder`` (rules/event_time.py) holds a claim until intake's progress
    records say that no earlier claim of its clause can still come, and then releases it. A held
    claim's record is returned in ``batch.held``, not to be acknowledged with its batch: its offset
    stays uncommitted, so the topic itself keeps the held claims, and a worker that takes the
    partition over (or this one after a rebalance, :meth:`forget`) reads them again. A released
    claim's record comes back in ``batch.released`` of the batch that decided it. A claim already
    decided (a redelivery) re-emits its stored outputs at once; one that comes after its clause has
    released a later one is decided at once, and its decision says by how much it was late."""

    def __init__(self, policy: Policy, state: ClaimState, partition_of: Callable[[bytes], int],
                 inputs: Iterable[Input], clock: Clock = utc_now):
        self.policy = policy
        self.state = state
        self.partition_of = partition_of  # where intake's producer puts a claim of this key
        self.inputs = frozenset(inputs)  # every input partition intake reads: the watermark waits for each
        self.clock = clock
        self._orders: dict[int, EventTimeOrder] = {}
        self._held: dict[int, HeldClaims] = {}

    @property
    def holding(self) -> int:
        return sum(map(len, self._held.values()))

    def forget(self) -> list[Record]:
        """Give up every held claim (the consumer reads them again from the committed offsets after
        a rebalance); their records."""
        dropped = [record for held in self._held.values() for record, _ in held.values()]
        self._orders.clear()
        self._held.clear()
        return dropped

    def take(self, records: Iterable[Record]) -> StageBatch:
        batch = StageBatch()
        partitions = set()
        for record in records:
            try:
                self._one(record, batch)
            except Exception as exc:
                raise StageFailed(record, exc) from exc
            partitions.add(record.partition)
        in_this_batch = {(record.partition, record.offset) for record in batch.held}
        for partition in sorted(partitions & self._orders.keys()):  # those a claim or a progress record reached
            held = self._held.setdefault(partition, {})
            for claim in self._orders[partition].release():
                record, carried = held.pop((claim.clause_id, claim.source, claim.event_id, claim.fingerprint))
                try:
                    self._decide(record, carried, batch, released=True)
                except Exception as exc:
                    raise StageFailed(record, exc) from exc
                if (record.partition, record.offset) in in_this_batch:
                    in_this_batch.discard((record.partition, record.offset))
                else:
                    batch.released.append(record)
        batch.held = [record for record in batch.held if (record.partition, record.offset) in in_this_batch]
        return batch

    def _order(self, partition: int) -> EventTimeOrder:
        order = self._orders.get(partition)
        if order is None:
            # what the partition's clauses last released lives in the engine's state, written with
            # the released claim; the rest of the order is rebuilt from the records read again
            view = self.state.reader(partition)
            known = {key: value for key in map(released_key, self.policy.clauses) if (value := view.get(key)) is not None}
            order = self._orders[partition] = EventTimeOrder(self.policy, self.inputs, known)
        return order

    def _one(self, message: Record, batch: StageBatch) -> None:
        try:
            if message.key == PROGRESS_KEY:
                order = self._order(message.partition)
                for source, moment in read_progress_record(message.value).items():
                    if source in self.inputs:  # one of a topic's partitions beyond those the app was made with
                        order.progress(source, moment)
                return
            record = read_claim_record(message.key, message.value, self.policy.claims_key)
            intended = self.partition_of(message.key)  # type: ignore[arg-type]  # the claims key of its clause, read_claim_record checked
            if message.partition != intended:  # its clause's caps are in another partition's state
                raise unreadable_claim(f"it is on partition {message.partition}, but intake puts clause "
                                       f"{record.claim.clause_id[:100]!r} on {intended}")
        except Unreadable as exc:
            batch.outputs.put(DEAD_LETTERS_TOPIC, *dead_lettered(message, exc.reason, self.clock()))
            return
        claim = record.claim
        if self.state.reader(message.partition).get(claim_key(claim.clause_id, claim.source, claim.event_id)) is not None:
            self._decide(message, record, batch)  # decided before: the engine re-emits its outputs (or refuses a reuse)
            return
        late = self._order(message.partition).offer(claim)
        if late is not None:
            self._decide(message, record, batch, late_by=late.late_by)
            return
        held = self._held.setdefault(message.partition, {})
        identity = (claim.clause_id, claim.source, claim.event_id, claim.fingerprint)
        if identity not in held:  # else a copy: the first one is held, this one acknowledged with its batch
            held[identity] = (message, record)
            batch.held.append(message)

    def _decide(self, message: Record, record: ClaimRecord, batch: StageBatch, late_by: str | None = None,
                released: bool = False) -> None:
        claim = record.claim
        writes = ClaimWrites(self.state.reader(message.partition))  # type: ignore[arg-type]
        try:
            outcome = Engine(self.policy, writes).decide(claim, late_by=late_by)
            if released:  # with the claim's writes: a worker restarted on the state knows what came before
                at, source, event_id = order_key(claim)
                writes[released_key(claim.clause_id)] = {"at": at, "source": source, "event_id": event_id}
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
