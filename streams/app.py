"""The faust-streaming topology around the pure rules core.

    input topics ──intake──▶ subsidy-claims (key: clause) ──decide──▶ subsidy-decisions        (key: payee)
      (raw bytes)    │                                        │   ├──▶ disbursement-instructions (key: payee)
                     │                                        │   ├──▶ subsidy-rejections
                     └──▶ subsidy-rejections ──▶ SQL ledger   └──▶ SQL ledger (one transaction per batch)

How "effectively once" holds without Kafka transactions (faust-streaming's exactly-once has
known duplicate-on-rebalance bugs and commits into the transaction of the partition a record goes
to; tried on Apache Kafka and not kept: docs/DESIGN.md, "Exactly-once on Apache Kafka"):

* every id is deterministic: claims carry the input's event id; decision and instruction ids
  are uuid5(policy, clause, source, event); a rejection's id is a digest of the input's
  topic, partition, offset and bytes;
* the engine remembers every decided claim in the table, so a redelivered claim re-emits the
  stored decision and instructions byte for byte instead of deciding again;
* each claim's state change is one changelog record (streams/state.py), so a restore never
  holds half a claim;
* intake and decide take batches (``take_events``) and process each batch in a block with
  no ``await``, every output queued in the batch's StageOutputs: a batch (so each claim in
  it) is queued entirely or not at all, even when the worker is stopped mid-stream;
* a batch is acknowledged, so its offsets can be committed, only after the broker
  acknowledged every one of its records (streams/stage_outputs.py, ``deliver``) and the
  ledger transaction holding its records committed (``book``);
* the ledger stores an id once and refuses the same id with other content (LedgerConflict)
  and any cap overrun (CapOverrun): the money path halts rather than guesses;
* a record of our own topics that is not what the pipeline wrote (any client can write to
  them) is skipped and written to subsidy-dead-letters (streams/own_records.py), not decided
  and not allowed to stop the worker; an engine failure on a readable claim is still an
  internal-error rejection, and a broker or ledger failure still stops the worker unacknowledged.

At-least-once delivery plus these is the effect of exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import datetime as dt
import functools
import hashlib
import logging
import os
import time
import traceback
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner

from rules.engine import Engine, Outcome, claim_key
from rules.intake import Rejected, intake
from rules.policy import load_policy
from rules.records import Decision, Instruction
from schemas.inputs import INPUT_TOPICS
from schemas.outputs import kept_key, kept_original, rejection_record
from streams import faust_runtime
from streams.config import StreamConfig, bootstrap_of
from streams.input_gap_check import records_between
from streams.metrics import METRICS, render_gauge
from streams.offset_guard import OffsetGuard
from streams.own_records import Unreadable, claim_record, dead_letter, dead_letter_key, read_claim_record, unreadable_claim
from streams.stage_outputs import StageOutputs
from streams.stall_watch import STALL_CHECK_SECONDS, STALL_CHECKS, PartitionSample, StallWatch
from streams.state import ClaimWrites, TxnTable, compact_json
from streams.topics import (
    CLAIMS_TOPIC,
    DEAD_LETTERS_TOPIC,
    DECISIONS_TOPIC,
    INSTRUCTIONS_TOPIC,
    REJECTIONS_TOPIC,
    STATE_TABLE,
)
from subsidy.runtime import RECLAIM_SECONDS, reclaim_memory

log = logging.getLogger("streams")

#: exit status of a worker that stopped because the ledger refused a record
LEDGER_REFUSED_EXIT = 70
#: exit status of a worker whose intake or decide batch raised (nothing of the batch acknowledged)
STAGE_FAILED_EXIT = 71
#: how long a stopping worker lets a batch's records reach the broker before exiting unacknowledged
STOPPING_DELIVERY_SECONDS = 60.0
#: WHY 256 KiB and not aiokafka's 16 KiB: a partition has one record batch in flight at a time,
#: so a decide batch's ~1.5 MB of outputs (the changelog records hold whole decisions) went out as
#: ~100 batches of 16 KiB, one produce round trip after another: 400-700 ms per stage batch at
#: 1,000 inputs/s, most of the latency (bench/README.md). Well under Kafka's default 1 MiB
#: message.max.bytes.
PRODUCER_MAX_BATCH_BYTES = 256 * 1024
#: how often a worker tries to write the dead letters of state changelog records its restores skipped
CHANGELOG_DEAD_LETTER_SECONDS = 1.0


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def origin_of(message: Any, key: bytes | None, raw: bytes) -> dict[str, Any]:
    """Where a claim came from, as its ``subsidy-claims`` record carries it: enough for decide to
    build the rejection intake would have built. The bytes only up to what a rejection keeps
    (64 KiB, schemas/outputs.py), with the whole input's length and SHA-256 when they are cut, so
    that an input of 1 MiB does not make a claim record of 1.4 MiB."""
    kept = kept_original(raw)
    origin = {"topic": message.topic, "partition": message.partition, "offset": message.offset, "key": _b64(key), "raw": _b64(kept)}
    if len(kept) < len(raw):
        origin["length"], origin["sha256"] = len(raw), hashlib.sha256(raw).hexdigest()
    return origin


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _broker_time(message) -> dt.datetime | None:
    return None if message.timestamp is None else dt.datetime.fromtimestamp(message.timestamp, dt.timezone.utc)


def _short_error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {os.path.basename(last[0].filename)}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:500]


def _exit_now(code: int) -> None:
    """Exit at once, without Faust's shutdown (which would acknowledge the batch in hand),
    after the log says why."""
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: BLE001 - a broken log handler must not keep the worker alive
            pass
    os._exit(code)


#: RocksDB sized for a flat, small footprint. Faust's defaults (per partition database, active
#: or standby: 64 MiB write buffers x 3 and a 2 GiB block cache) let a worker's memory climb
#: for hours; these cap it near 4 MiB per database (the state a claim reads is a few small
#: cap entries, and a new claim's key is ruled out by the bloom filter).
ROCKSDB_OPTIONS = {"write_buffer_size": 1 << 20, "max_write_buffer_number": 2, "block_cache_size": 2 << 20}


class StageBatch:
    """What one batch of intake or decide gives the topics and the ledger, in processing order."""

    __slots__ = ("outputs", "decisions", "instructions", "rejections", "fresh_instructions", "stamps")

    def __init__(self) -> None:
        self.outputs = StageOutputs()
        self.decisions: list = []
        self.instructions: list = []
        self.rejections: list = []
        self.fresh_instructions: list = []  # not re-emitted duplicates: what the metrics count as granted
        self.stamps: list = []  # input timestamps, for the latency metric


def records_skipped(tp, first: int, after: int, detail: str = "") -> None:
    """Faust fetched past records of a stage's topic it never delivered (streams/faust_runtime/skip_fix.py,
    and for the state changelog streams/state.py)."""
    log.critical("%s[%s]: the consumer skipped offsets @%s..@%s on their way to the agent; exiting before "
                 "a commit can pass them, so that a restarted worker reads them again (if this repeats, the "
                 "records may be gone: older than the topic's retention)%s",
                 tp.topic, tp.partition, first, after - 1, f"; {detail}" if detail else "")
    _exit_now(STAGE_FAILED_EXIT)


def record_dropped(tp, offset: int) -> None:
    """Faust dropped a record of a stage's topic unread (a rebalance or a shutdown) and acknowledged
    it; the acknowledgement was refused, so the record is read again (streams/faust_runtime/skip_fix.py)."""
    METRICS.dropped.inc(tp.topic)
    log.info("%s[%s]@%s was dropped unread during a rebalance or a shutdown; not acknowledged, it will be read again",
             tp.topic, tp.partition, offset)


def input_gap_taken(tp, first: int, after: int) -> None:
    """Offsets of an input that hold no record (transaction markers, compacted records), read back
    from the broker: Faust commits past them (streams/faust_runtime/skip_fix.py)."""
    METRICS.input_gaps.inc(tp.topic, by=after - first)
    log.debug("%s[%s]: offsets @%s..@%s hold no record (transaction markers or compacted away)",
              tp.topic, tp.partition, first, after - 1)


def build_app(config: StreamConfig) -> faust.App:
    bootstrap = bootstrap_of(config.broker)
    faust_runtime.install((CLAIMS_TOPIC,), on_gap=records_skipped, on_dropped=record_dropped, stage_topics=INPUT_TOPICS,
                          records_in=lambda tp, first, after: records_between(bootstrap, tp.topic, tp.partition, first, after),
                          on_input_gap=input_gap_taken)
    policy = load_policy(config.policy_path) if config.policy_path else load_policy()
    settings: dict[str, Any] = {
        "broker": config.broker,
        # app-wide, not on the table: yarl takes a table's "rocksdb://" for false (no host, no
        # path) and Faust then silently falls back to the app's store
        "store": f"{config.state_store}://",
        "topic_partitions": config.partitions,
        "topic_disable_leader": True,
        "web_bind": config.web_bind,
        "web_host": config.web_bind,
        "consumer_auto_offset_reset": "earliest",
        # Kafka 4's default linger.ms: the record batches that intake and decide deliver at
        # about the same time can share one produce request.
        "producer_linger": 0.005,
        "producer_max_batch_size": PRODUCER_MAX_BATCH_BYTES,
    }
    if config.web_port:
        settings["web_port"] = config.web_port
    if config.session_timeout:
        settings["broker_session_timeout"] = config.session_timeout
        # Kafka wants heartbeats at most a third of the session apart
        settings["broker_heartbeat_interval"] = min(3.0, config.session_timeout / 4)
    if config.datadir:
        settings["datadir"] = config.datadir
    settings.update(config.extra_faust_settings)
    app = faust.App(config.app_id, **settings)

    inputs = app.topic(*INPUT_TOPICS, key_serializer="raw", value_serializer="raw")
    claims_topic = app.topic(CLAIMS_TOPIC, key_serializer="raw", value_serializer="raw", partitions=config.partitions)

    # Like app.Table(...), with our table class (whole claims per changelog record). Keys and
    # values stay bytes (the types, not a schema: Faust overrides a table schema's serializers
    # with those of its types, json by default): TxnTable reads its changelog itself, so that a
    # record it did not write is skipped rather than lost in Faust's decoding (streams/state.py).
    table = app.tables.add(
        TxnTable(app, name=STATE_TABLE, default=None, partitions=config.partitions,
                 key_type=bytes, value_type=bytes, beacon=app.tables.beacon,
                 help="the engine's running state",
                 options=dict(ROCKSDB_OPTIONS) if config.state_store == "rocksdb" else None)
    )
    table.on_skipped = records_skipped

    # -- records of our own topics that cannot be read -----------------------------------------

    def dead_lettered(message, reason: str) -> tuple[bytes | None, bytes]:
        """The dead letter of a record that cannot be read (key, value), counted and logged."""
        record = dead_letter(message.topic, message.partition, message.offset, message.key, message.value,
                             _broker_time(message), reason, _now())
        METRICS.dead_letters.inc(message.topic)
        log.warning("%s[%s]@%s cannot be read; written to %s as %s: %s", message.topic, message.partition,
                    message.offset, DEAD_LETTERS_TOPIC, record["dead_letter_id"], reason)
        return dead_letter_key(message.key), compact_json(record)

    # WHY the changelog's dead letters are not delivered with a batch: a restore applies records
    # in a synchronous call that cannot wait for the broker, and the state moves past the record
    # at once (RocksDB stores the offset with the batch). So they are queued here and written by
    # a timer, which Faust starts once the first restore has ended. A worker that dies before
    # then does not write them; the record stays in the changelog, and the next worker that
    # restores from before it (with the memory store, every start) writes it, with the same id.
    changelog_dead_letters: list[tuple[bytes | None, bytes]] = []
    table.on_unreadable = lambda message, reason: changelog_dead_letters.append(dead_lettered(message, reason))

    @app.timer(interval=CHANGELOG_DEAD_LETTER_SECONDS)
    async def write_changelog_dead_letters() -> None:
        if not changelog_dead_letters:
            return
        outputs = StageOutputs()
        for key, value in changelog_dead_letters:
            outputs.put(DEAD_LETTERS_TOPIC, key, value)
        written = len(outputs)
        try:
            await outputs.deliver(app.producer._ensure_producer())
        except Exception as exc:  # noqa: BLE001 - kept, and tried again at the next tick
            log.warning("the dead letters of %s unreadable state changelog records were not written (%s); trying again",
                        written, _short_error(exc))
            return
        del changelog_dead_letters[:written]  # a restore may have added more meanwhile

    # -- the ledger: one database transaction per batch of intake or decide ---------------------

    ledger_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
    ledger_holder: dict[str, Any] = {}

    def open_ledger():
        from sinks.ledger import DEFAULT_LEDGER_URL, Ledger

        if "ledger" not in ledger_holder:
            ledger_holder["ledger"] = Ledger.open(config.ledger_url or DEFAULT_LEDGER_URL, timezone=policy.timezone)
        return ledger_holder["ledger"]

    def record_batch(batch: StageBatch):
        from sinks.ledger import LedgerUnavailable

        ledger = open_ledger()
        delay = 0.5
        while True:
            try:
                return ledger.record(batch.decisions, batch.instructions, batch.rejections)
            except LedgerUnavailable as exc:
                # Nothing of the batch was written and the batch is idempotent: wait for the
                # database however long it takes; the events stay unacknowledged meanwhile.
                log.warning("ledger unavailable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def halt(exc: BaseException) -> None:
        log.critical(
            "LEDGER REFUSED A RECORD, STOPPING THIS WORKER WITHOUT COMMITTING: %s. "
            "The stream produced something the ledger will not book (a conflicting id or a cap overrun). "
            "Nothing after this batch is acknowledged; investigate before restarting.", exc,
        )
        _exit_now(LEDGER_REFUSED_EXIT)

    async def book(batch: StageBatch) -> None:
        # WHY THIS IS THE ONLY SAFE SHAPE FOR THE MONEY PATH
        #
        # take_events() hands a stage up to N events and acknowledges them only after the body
        # of its loop has finished (its `finally` acks the batch), and this runs inside that
        # body. Faust commits offsets only up to acknowledged events, and flushes the producer
        # before each commit. So an input's offset is committed only after the ledger
        # transaction holding its records has committed: a worker killed at any moment either
        # had its batch committed in the database (and the redelivery is then a no-op there,
        # ids being primary keys) or not (and the redelivery writes it). Nothing is lost and
        # nothing is booked twice. The claims topic is keyed by clause, so the ledger sees each
        # clause's effects in decision order (a payment before its clawback); the public output
        # topics, keyed by payee, would not give it that order.
        #
        # Two ways that `finally` could ack a batch the database does not have, both closed:
        # * this raising: a refused record (LedgerConflict, CapOverrun, InvalidRecord) exits the
        #   process on the spot (halt), before any ack; an unreachable database is retried in
        #   record_batch until it answers, never raised;
        # * the stage being cancelled (worker shutdown) while the transaction runs in the
        #   executor: we then block until that transaction has finished; if it did not
        #   commit, we exit without acking.
        future = ledger_executor.submit(record_batch, batch)
        try:
            result = await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            try:
                future.result()  # block: the loop is stopping anyway
            except BaseException as exc:  # noqa: BLE001
                log.critical("ledger batch did not commit during shutdown (%s); exiting without acknowledging it", exc)
                _exit_now(LEDGER_REFUSED_EXIT)
            raise
        except Exception as exc:  # a refused record (LedgerError) or any other failure of the money path
            halt(exc)
            raise
        now = time.time()
        with METRICS.lock:
            METRICS.ledger_batches.inc()
            for kind in ("decision", "instruction", "rejection"):
                METRICS.ledger_new.inc(kind, by=getattr(result, f"new_{kind}s"))
                METRICS.ledger_present.inc(kind, by=getattr(result, f"present_{kind}s"))
            for i in batch.fresh_instructions:
                METRICS.granted.inc(i.clause_id, by=i.amount)
            for ts in batch.stamps:
                METRICS.latency.observe(max(0.0, now - ts))

    def reject(origin: dict[str, Any], code: str, reason: str) -> dict[str, Any]:
        record = rejection_record(
            origin["topic"], origin["partition"], origin["offset"], _unb64(origin.get("key")),
            _unb64(origin["raw"]) or b"", code, reason, _now(),
            original_length=origin.get("length"), original_sha256=origin.get("sha256"),
        )
        METRICS.rejections.inc(code)
        return record

    def emit(batch: StageBatch, decisions: list[Decision], instructions: list[Instruction], rejections: list, origin_key: bytes | None, ts: float | None, duplicate: bool = False) -> None:
        """Queue one claim's outputs and add them to the batch's ledger records. Synchronous on
        purpose: no await, so no half-sent claim."""
        put = batch.outputs.put
        for d in decisions:
            put(DECISIONS_TOPIC, d.payee.id.encode(), compact_json(d.to_wire()))
            METRICS.decisions.inc(d.outcome)
        for i in instructions:
            put(INSTRUCTIONS_TOPIC, i.payee.id.encode(), compact_json(i.to_wire()))
        for r in rejections:
            put(REJECTIONS_TOPIC, origin_key, compact_json(r))
        batch.decisions += decisions
        batch.instructions += instructions
        batch.rejections += rejections
        if not duplicate:
            batch.fresh_instructions += instructions
        if ts:
            batch.stamps.append(ts)

    def stage_failed(stage: str, event, exc: BaseException) -> None:
        # Per-message errors are turned into rejections inside intake_one/decide_one; anything
        # escaping them would leave the loop, and take_events() would then acknowledge the whole
        # batch, unprocessed rest included. Exit instead: nothing of the batch is committed and
        # all of it is redelivered (its ids are deterministic).
        message = event.message
        log.critical("%s: %s on %s[%s]@%s; exiting without acknowledging the batch",
                     stage, _short_error(exc), message.topic, message.partition, message.offset, exc_info=exc)
        _exit_now(STAGE_FAILED_EXIT)

    offset_guard = OffsetGuard()

    def guard_offsets(stage: str, events) -> None:
        """Exit, acknowledging nothing, if the consumer skipped records of our own topics
        (streams/offset_guard.py)."""
        generation = app.consumer_generation_id
        committed = app.consumer._committed_offset  # Faust's own view (next record to read); not public
        for event in events:
            message = event.message
            faust_runtime.skip_fix.handed(message)
            if message.topic == CLAIMS_TOPIC:
                committed_offset = committed.get(message.tp)
                if offset_guard.starts(message.tp, generation):
                    # one line per partition and rebalance: where each stage took up its work
                    log.info("%s: %s[%s] starts at @%s in generation %s (committed: @%s)", stage, message.topic,
                             message.partition, message.offset, generation, committed_offset)
                missing = offset_guard.skipped_to(message.tp, message.offset, generation, committed_offset)
                if missing is not None:
                    log.critical("%s: the consumer handed over %s[%s]@%s where @%s was next: records were skipped; "
                                 "exiting without acknowledging the batch, so that a restarted worker reads them again",
                                 stage, message.topic, message.partition, message.offset, missing)
                    _exit_now(STAGE_FAILED_EXIT)

    async def deliver(stage: str, outputs: StageOutputs) -> None:
        """Return once the broker holds every record of the batch (streams/stage_outputs.py);
        otherwise exit, acknowledging nothing: the batch is read again, its ids unchanged."""
        # aiokafka's producer under Faust's: record batches are its API, not Faust's
        delivery = asyncio.ensure_future(outputs.deliver(app.producer._ensure_producer()))
        try:
            await asyncio.shield(delivery)
        except asyncio.CancelledError:
            # The worker is stopping, and take_events() acknowledges the batch as soon as this
            # returns: let the records reach the broker first, or exit unacknowledged.
            try:
                await asyncio.wait_for(delivery, STOPPING_DELIVERY_SECONDS)
            except BaseException as exc:  # noqa: BLE001
                log.critical("%s: the batch's records were not delivered during shutdown (%s); exiting without "
                             "acknowledging the batch", stage, _short_error(exc))
                _exit_now(STAGE_FAILED_EXIT)
            raise
        except Exception as exc:  # noqa: BLE001
            log.critical("%s: the broker did not take the batch's records (%s); exiting without acknowledging "
                         "the batch, so that a restarted worker reads it again", stage, _short_error(exc))
            _exit_now(STAGE_FAILED_EXIT)

    async def in_batches(stream, stage: str, handle_one) -> None:
        """Each batch handled event after event with no await in between, then its records
        delivered and booked at once (see the agents)."""
        await asyncio.get_running_loop().run_in_executor(ledger_executor, open_ledger)
        async for events in stream.take_events(config.stage_batch, within=config.stage_within):
            guard_offsets(stage, events)
            batch = StageBatch()
            for event in events:
                try:
                    handle_one(event, batch)
                except Exception as exc:  # noqa: BLE001
                    stage_failed(stage, event, exc)
            if batch.decisions or batch.rejections:
                await asyncio.gather(deliver(stage, batch.outputs), book(batch))
            elif batch.outputs:
                await deliver(stage, batch.outputs)

    # -- intake: bytes of the four input topics -> claims keyed by clause, or a rejection ----

    @app.agent(inputs, name="intake")
    async def intake_agent(stream):
        # Batches: take_events() acks a batch only after this body has run, and the body has no
        # await until every output of the batch is queued, then waits until the broker holds
        # them all and its rejections are booked. A worker stopped at any moment has queued a
        # whole batch or none of it; a redelivered input yields the same claims (same ids) or
        # the same rejection (id from topic/partition/offset/bytes).
        await in_batches(stream, "intake", intake_one)

    def intake_one(event, batch: StageBatch) -> None:
        message = event.message
        raw = bytes(event.value) if isinstance(event.value, (bytes, bytearray)) else b""
        key = kept_key(message.key)
        ts = message.timestamp
        origin = origin_of(message, key, raw)
        METRICS.events_in.inc(message.topic)
        try:
            claims = intake(message.topic, raw, policy)
        except Rejected as exc:
            emit(batch, [], [], [reject(origin, exc.code, exc.reason)], key, ts)
            return
        except Exception as exc:  # one bad message must never stop the worker
            log.exception("intake: unexpected error on %s[%s]@%s", message.topic, message.partition, message.offset)
            emit(batch, [], [], [reject(origin, "internal-error", f"the pipeline failed on this message ({_short_error(exc)}); report it, then publish it again")], key, ts)
            return
        for claim in claims:
            batch.outputs.put(CLAIMS_TOPIC, claim.clause_id.encode(), claim_record(claim, origin, ts))
            METRICS.claims.inc(claim.clause_id)

    # -- decide: one partition of clauses, its caps in the table -------------------------------

    @app.agent(claims_topic, name="decide")
    async def decide_agent(stream):
        # A batch is decided claim after claim, in partition order, with no await anywhere in
        # it: each claim's table change (one changelog record) and every output of that claim
        # are queued together, later claims of the batch see the table as the earlier ones left
        # it, and the batch is acknowledged only after all of it was queued and booked. A worker
        # stopped between batches has queued a batch entirely or not at all; the rest is
        # redelivered. Booking here rather than in an agent of its own saves a topic hop (each
        # claim's records produced and consumed once more) and that agent's batching window.
        await in_batches(stream, "decide", decide_one)

    claims_partitions = list(range(config.partitions))

    @functools.lru_cache(maxsize=1024)
    def claims_partition_of(key: bytes) -> int:
        """Where intake's sends put a claim with this key (the producer's default partitioner, as
        Faust configures it: murmur2)."""
        return DefaultPartitioner()(key, claims_partitions, claims_partitions)

    def decide_one(event, batch: StageBatch) -> None:
        message = event.message
        try:
            record = read_claim_record(message.key, message.value)
            if message.partition != claims_partition_of(message.key):  # its clause's caps are in another partition's state
                raise unreadable_claim(f"it is on partition {message.partition}, but intake puts clause "
                                       f"{record.claim.clause_id[:100]!r} on {claims_partition_of(message.key)}")
        except Unreadable as exc:
            batch.outputs.put(DEAD_LETTERS_TOPIC, *dead_lettered(message, exc.reason))
            return
        claim = record.claim
        writes = ClaimWrites(table.reader(message.partition))  # type: ignore[arg-type, attr-defined]
        try:
            outcome = Engine(policy, writes).decide(claim)
        except Exception as exc:
            log.exception("decide: unexpected error on claim %s", claim.event_id)
            writes.writes.clear()
            outcome = Outcome(rejection=("internal-error", f"the pipeline failed on this claim ({_short_error(exc)}); report it"))
        if writes.writes:
            table.apply_writes(event, claim_key(claim.clause_id, claim.source, claim.event_id), writes.writes, batch.outputs)  # type: ignore[attr-defined]
        rejections = [reject(record.origin, *outcome.rejection)] if outcome.rejection else []
        if outcome.duplicate:
            METRICS.duplicates.inc()
        # a claim written before keys were bounded may hold a longer one
        emit(batch, outcome.decisions, outcome.instructions, rejections, kept_key(record.origin_key), record.ts, outcome.duplicate)

    def consumer_lag():
        """Messages behind the end, per assigned partition: the fetch high-water mark minus the
        next offset to read. Faust has no public read position, hence ``_read_offset``. Table
        changelogs are skipped: their active owner writes them and reads them only to recover."""
        consumer = app.consumer
        for tp in sorted(consumer.assignment()):
            if consumer._is_changelog_tp(tp):
                continue
            high = consumer.highwater(tp)
            if high is None:
                continue  # nothing fetched from it yet
            read = consumer._read_offset.get(tp)
            yield (tp.topic, str(tp.partition)), max(0, high - (read + 1 if read is not None else 0))

    stall_watch = StallWatch()

    @app.timer(interval=STALL_CHECK_SECONDS)
    async def reread_stalled_partitions() -> None:
        """See streams/stall_watch.py. Reads Faust's per-partition read and commit offsets, which
        it does not make public."""
        consumer = app.consumer
        if app.in_recovery or not consumer.flow_active:
            return
        queued: dict[str, int] = {}
        for channel in app.topics:  # the channels the conductor delivers to (the agents' streams)
            for topic in channel.topics:
                queued[topic] = queued.get(topic, 0) + channel.queue.qsize()
        samples = {}
        for tp in consumer.assignment():
            if consumer._is_changelog_tp(tp):
                continue
            read, committed = consumer._read_offset.get(tp), consumer._committed_offset.get(tp)
            delivered_next = read + 1 if read is not None else committed
            position = await consumer.position(tp)
            if delivered_next is not None and position is not None:
                samples[tp] = PartitionSample(delivered_next, position, queued.get(tp.topic, 0))
        for tp in stall_watch.stalled(samples):
            committed = consumer._committed_offset.get(tp)
            if committed is None:
                continue
            log.warning("%s[%s]: fetched up to %s but only %s handed to the agent, for %.0fs; "
                        "reading again from the committed offset %s",
                        tp.topic, tp.partition, samples[tp].position, samples[tp].delivered_next,
                        STALL_CHECK_SECONDS * STALL_CHECKS, committed)
            METRICS.rereads.inc(tp.topic)
            offset_guard.forget(tp)  # the seek may move forward of what the agent last saw
            await consumer.seek(tp, committed)

    @app.timer(interval=RECLAIM_SECONDS)
    async def reclaim_memory_every_minute() -> None:
        """See subsidy/runtime.py: without it a worker's memory grows (cycles, allocator)."""
        started = time.perf_counter()
        reclaim_memory()
        METRICS.reclaims.inc()
        METRICS.reclaim_seconds.inc(by=time.perf_counter() - started)

    @app.page("/metrics")
    async def metrics_page(web, request):
        lag = render_gauge("subsidy_consumer_lag", "messages not yet read, by topic and partition", ("topic", "partition"), consumer_lag())
        return web.text(METRICS.render() + lag, content_type="text/plain; version=0.0.4")

    return app
