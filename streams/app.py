"""The Faust adapter around the stages: topics, the state table, agents and timers.

The pipeline's logic is in streams/stages.py (``IntakeStage``, ``DecideStage``: plain classes
over plain records) and the order of a batch's commit in streams/checkpoint.py (``Checkpoint``).
Here each agent takes a batch of events (``take_events``), checks it was handed every record
(``guard_offsets``), turns the events into :class:`streams.stages.Record`, has its stage take
them in one call with no ``await`` and the checkpoint commit the result; ``take_events``
acknowledges the batch only after that. Around them: the fixes of Faust's internals
(streams/faust_runtime/), the dead letters of unreadable changelog records, the stall watch, the
memory reclaim and ``/metrics``.

How "effectively once" holds without Kafka transactions (faust-streaming's exactly-once has
known duplicate-on-rebalance bugs and commits into the transaction of the partition a record goes
to; tried on Apache Kafka and not kept: docs/DESIGN.md, "Exactly-once on Apache Kafka"):

* every id is deterministic, and a redelivered claim re-emits its stored outputs byte for byte
  (streams/stages.py);
* each claim's state change is one changelog record (streams/state.py), so a restore never
  holds half a claim;
* a batch is queued entirely or not at all, and acknowledged only after the broker holds its
  outputs and the ledger its records (streams/checkpoint.py);
* the ledger stores an id once and refuses the same id with other content (LedgerConflict)
  and any cap overrun (CapOverrun): the money path halts rather than guesses;
* a record of our own topics that is not what the pipeline wrote (any client can write to
  them) is skipped and written to subsidy-dead-letters (streams/own_records.py), not decided
  and not allowed to stop the worker; an engine failure on a readable claim is still an
  internal-error rejection, and a broker or ledger failure still stops the worker unacknowledged.

At-least-once delivery plus these is the effect of exactly once.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner

from rules.policy import load_policy
from schemas.inputs import INPUT_TOPICS
from streams import faust_runtime
from streams.checkpoint import STAGE_FAILED_EXIT, Checkpoint, exit_now
from streams.config import StreamConfig, bootstrap_of
from streams.input_gap_check import records_between
from streams.metrics import METRICS, render_gauge
from streams.offset_guard import OffsetGuard
from streams.stage_outputs import StageOutputs
from streams.stages import DecideStage, IntakeStage, Record, StageFailed, dead_lettered, short_error, utc_now
from streams.stall_watch import STALL_CHECK_SECONDS, STALL_CHECKS, PartitionSample, StallWatch
from streams.state import TxnTable
from streams.topics import CHECKPOINTS_TOPIC, CLAIMS_TOPIC, DEAD_LETTERS_TOPIC, INTAKE_TOPICS, STATE_TABLE, input_partitions_of
from subsidy.runtime import RECLAIM_SECONDS, reclaim_memory

log = logging.getLogger("streams")

#: WHY 256 KiB and not aiokafka's 16 KiB: a partition has one record batch in flight at a time,
#: so a decide batch's ~1.5 MB of outputs (the changelog records hold whole decisions) went out as
#: ~100 batches of 16 KiB, one produce round trip after another: 400-700 ms per stage batch at
#: 1,000 inputs/s, most of the latency (bench/README.md). Well under Kafka's default 1 MiB
#: message.max.bytes.
PRODUCER_MAX_BATCH_BYTES = 256 * 1024
#: how often a worker tries to write the dead letters of state changelog records its restores skipped
CHANGELOG_DEAD_LETTER_SECONDS = 1.0
#: how often intake tells decide how far it has read every input partition it holds
PROGRESS_SECONDS = 1.0
#: how often a worker asks whether a ledger checkpoint is due (its interval: StreamConfig.checkpoint_every_*)
CHECKPOINT_CHECK_SECONDS = 5.0
#: how far a backfill's idle input counts as read: nothing more is coming
END_OF_TIME = dt.datetime.max.replace(tzinfo=dt.timezone.utc)

#: RocksDB sized for a flat, small footprint. Faust's defaults (per partition database, active
#: or standby: 64 MiB write buffers x 3 and a 2 GiB block cache) let a worker's memory climb
#: for hours; these cap it near 4 MiB per database (the state a claim reads is a few small
#: cap entries, and a new claim's key is ruled out by the bloom filter).
ROCKSDB_OPTIONS = {"write_buffer_size": 1 << 20, "max_write_buffer_number": 2, "block_cache_size": 2 << 20}


def record_of(message: Any) -> Record:
    """A Faust message as the stages read it."""
    return Record(message.topic, message.partition, message.offset, message.key, message.value, message.timestamp)


def records_skipped(tp, first: int, after: int, detail: str = "") -> None:
    """Faust fetched past records of a stage's topic it never delivered (streams/faust_runtime/skip_fix.py,
    and for the state changelog streams/state.py)."""
    log.critical("%s[%s]: the consumer skipped offsets @%s..@%s on their way to the agent; exiting before "
                 "a commit can pass them, so that a restarted worker reads them again (if this repeats, the "
                 "records may be gone: older than the topic's retention)%s",
                 tp.topic, tp.partition, first, after - 1, f"; {detail}" if detail else "")
    exit_now(STAGE_FAILED_EXIT)


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
    faust_runtime.install((CLAIMS_TOPIC,), on_gap=records_skipped, on_dropped=record_dropped, stage_topics=INTAKE_TOPICS,
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

    inputs = app.topic(*INTAKE_TOPICS, key_serializer="raw", value_serializer="raw")
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

    # WHY the changelog's dead letters are not delivered with a batch: a restore applies records
    # in a synchronous call that cannot wait for the broker, and the state moves past the record
    # at once (RocksDB stores the offset with the batch). So they are queued here and written by
    # a timer, which Faust starts once the first restore has ended. A worker that dies before
    # then does not write them; the record stays in the changelog, and the next worker that
    # restores from before it (with the memory store, every start) writes it, with the same id.
    changelog_dead_letters: list[tuple[bytes | None, bytes]] = []
    table.on_unreadable = lambda message, reason: changelog_dead_letters.append(dead_lettered(record_of(message), reason, utc_now()))

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
                        written, short_error(exc))
            return
        del changelog_dead_letters[:written]  # a restore may have added more meanwhile

    # -- the stages, and the one order of a batch's commit -------------------------------------

    claims_partitions = list(range(config.partitions))

    @functools.lru_cache(maxsize=1024)
    def claims_partition_of(key: bytes) -> int:
        """Where intake's sends put a claim with this key (the producer's default partitioner, as
        Faust configures it: murmur2)."""
        return DefaultPartitioner()(key, claims_partitions, claims_partitions)

    intake_stage = IntakeStage(policy, config.partitions, check_clock_skew=not config.backfill)
    decide_stage = DecideStage(policy, table, claims_partition_of, input_partitions_of(config.partitions))
    # aiokafka's producer under Faust's: record batches are its API, not Faust's
    checkpoint = Checkpoint(lambda: app.producer._ensure_producer(), config.ledger_url, policy.timezone)

    offset_guard = OffsetGuard()

    # The ledger's signed checkpoints: whoever books signs the head and publishes it (sinks/ledger/checkpoints.py).
    if config.checkpoint_key:
        from sinks.ledger.checkpoints import CheckpointSchedule, SigningKey

        schedule = CheckpointSchedule(SigningKey.load(config.checkpoint_key), config.checkpoint_every_entries, config.checkpoint_every_minutes * 60)

        @app.timer(interval=CHECKPOINT_CHECK_SECONDS)
        async def publish_ledger_checkpoint() -> None:
            signed = await checkpoint.sign_due(schedule)
            if signed is None:
                return
            outputs = StageOutputs()
            outputs.put(CHECKPOINTS_TOPIC, None, signed.to_json().encode())
            try:
                await outputs.deliver(app.producer._ensure_producer())
            except Exception as exc:  # noqa: BLE001 - still due, so signed and tried again at the next tick
                log.warning("the ledger checkpoint at seq %s was not published (%s); trying again", signed.seq, short_error(exc))
                return
            schedule.published(signed, time.monotonic())
            log.info("ledger checkpoint published: seq %s, %s entries, key %s", signed.seq, signed.entries, signed.key_id)

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
                    exit_now(STAGE_FAILED_EXIT)

    # decide's held claims (streams/stages.py DecideStage): their messages stay unacknowledged, so no
    # commit passes them (streams/faust_runtime/skip_fix.py hold; docs/decisions/0011), until a later batch decides them
    held_messages: dict[tuple[int, int], Any] = {}
    decide_generation: list[int | None] = [None]
    # when intake was last handed a record of each input partition, and whether a batch is in hand
    input_last_read: dict[tuple[str, int], float] = {}
    intake_busy = [False]

    def before_decide() -> None:
        """After a rebalance Faust seeks every partition back to its committed offset: the held claims
        come again, so the ones in hand are given up (their messages belong to the old generation)."""
        generation = app.consumer_generation_id
        if decide_generation[0] != generation:
            decide_generation[0] = generation
            faust_runtime.skip_fix.drop_held([held_messages.pop((r.partition, r.offset)) for r in decide_stage.forget()])

    async def in_batches(stream, name: str, stage: IntakeStage | DecideStage) -> None:
        """take_events() acknowledges a batch only after this loop's body has run: the stage takes
        the whole batch with no await, then the checkpoint delivers and books it. A worker
        stopped at any moment has queued a whole batch or none of it; the rest is redelivered."""
        await checkpoint.open()
        async for events in stream.take_events(config.stage_batch, within=config.stage_within):
            guard_offsets(name, events)
            if stage is decide_stage:
                before_decide()
            else:
                intake_busy[0] = True
                now = time.monotonic()
                for event in events:
                    input_last_read[event.message.topic, event.message.partition] = now
            try:
                batch = stage.take([record_of(event.message) for event in events])
            except StageFailed as failed:
                # Per-record errors are rejections inside the stage; anything escaping it would
                # leave the loop, and take_events() would then acknowledge the whole batch. Exit
                # instead: nothing of the batch is committed and all of it is redelivered.
                record = failed.record
                log.critical("%s: %s on %s[%s]@%s; exiting without acknowledging the batch", name,
                             short_error(failed.cause), record.topic, record.partition, record.offset, exc_info=failed.cause)
                exit_now(STAGE_FAILED_EXIT)
            if batch.held:
                in_hand = {(event.message.partition, event.message.offset): event.message for event in events}
                for record in batch.held:
                    message = held_messages[record.partition, record.offset] = in_hand[record.partition, record.offset]
                    faust_runtime.skip_fix.hold(message, app.consumer)
            await checkpoint.commit(name, batch)
            for record in batch.released:
                faust_runtime.skip_fix.release(held_messages.pop((record.partition, record.offset)), app.consumer)
            if stage is intake_stage:  # decide's batches run beside intake's: only intake's end says its claims are out
                intake_busy[0] = False

    @app.agent(inputs, name="intake")
    async def intake_agent(stream):
        await in_batches(stream, "intake", intake_stage)

    @app.agent(claims_topic, name="decide")
    async def decide_agent(stream):
        # Booking in decide rather than in an agent of its own saves a topic hop (each claim's
        # records produced and consumed once more) and that agent's batching window.
        await in_batches(stream, "decide", decide_stage)

    @app.timer(interval=PROGRESS_SECONDS)
    async def report_input_progress() -> None:
        """Tell decide how far intake has read each input partition it holds, also when nothing new
        comes: one caught up and handed nothing for ``idle_after`` seconds has read up to now, or
        with ``backfill`` to the end of time (a record published later and dated before the claims
        released meanwhile is late)."""
        consumer = app.consumer
        if intake_busy[0] or app.in_recovery or not consumer.flow_active:
            return
        now, progress = time.monotonic(), {}
        # fetched to the end (past any transaction markers, which no agent is handed), nothing
        # waiting for the intake agent, and nothing handed to it for idle_after seconds
        queued = sum(channel.queue.qsize() for channel in app.topics if set(channel.topics) & set(INPUT_TOPICS))
        for tp in consumer.assignment():
            if tp.topic not in INPUT_TOPICS:
                continue
            source = (tp.topic, tp.partition)
            last_read = input_last_read.setdefault(source, now)  # the quiet starts when it is first held
            high, position = consumer.highwater(tp), await consumer.position(tp)
            if not queued and high is not None and position is not None and position >= high and now - last_read >= config.idle_after:
                progress[source] = END_OF_TIME if config.backfill else utc_now()
            elif source in intake_stage.read_up_to:
                progress[source] = intake_stage.read_up_to[source]
        if progress and not intake_busy[0]:
            outputs = StageOutputs()
            intake_stage.report(outputs, progress)
            try:
                await outputs.deliver(app.producer._ensure_producer())
            except Exception as exc:  # noqa: BLE001 - reported again at the next tick
                log.warning("intake's progress was not delivered (%s); trying again", short_error(exc))

    # -- watching the consumer -----------------------------------------------------------------

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
        lag += render_gauge("subsidy_claims_held", "claims waiting for their turn in event-time order", (), [((), decide_stage.holding)])
        return web.text(METRICS.render() + lag, content_type="text/plain; version=0.0.4")

    return app
