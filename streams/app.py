"""The faust-streaming topology around the pure rules core.

    input topics ──intake──▶ subsidy-claims (key: clause) ──decide──▶ subsidy-decisions        (key: payee)
      (raw bytes)    │                                        │   ├──▶ disbursement-instructions (key: payee)
                     │                                        │   └──▶ subsidy-rejections
                     └──▶ subsidy-rejections                  └──▶ subsidy-ledger-feed (key: clause) ──ledger──▶ SQL ledger
                     └──▶ subsidy-ledger-feed

How "effectively once" holds without Kafka transactions (faust-streaming's exactly-once has
known duplicate-on-rebalance bugs, and the local broker cannot do it at all):

* every id is deterministic: claims carry the input's event id; decision and instruction ids
  are uuid5(policy, clause, source, event); a rejection's id is a digest of the input's
  topic, partition, offset and bytes;
* the engine remembers every decided claim in the table, so a redelivered claim re-emits the
  stored decision and instructions byte for byte instead of deciding again;
* each claim's state change is one changelog record (streams/state.py), so a restore never
  holds half a claim;
* every message is sent with ``send_soon`` inside a block with no ``await``: a claim is
  processed entirely or not at all, even when the worker is stopped mid-stream;
* offsets commit only after Faust's producer flush (Faust flushes before every commit) and,
  for the ledger, only after the database transaction committed (see ``ledger_sink``);
* the ledger stores an id once and refuses the same id with other content (LedgerConflict)
  and any cap overrun (CapOverrun): the money path halts rather than guesses.

At-least-once delivery plus these is the effect of exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import datetime as dt
import json
import logging
import os
import time
import traceback
from typing import Any

import faust

from rules.engine import Engine, Outcome, claim_key
from rules.intake import Claim, Rejected, intake
from rules.money import parse_amount
from rules.policy import load_policy
from schemas.inputs import INPUT_TOPICS
from schemas.outputs import rejection_record
from streams.config import StreamConfig
from streams.metrics import METRICS
from streams.state import ClaimWrites, TableView, TxnTable
from streams.topics import (
    CLAIMS_TOPIC,
    DECISIONS_TOPIC,
    FEED_TOPIC,
    INSTRUCTIONS_TOPIC,
    REJECTIONS_TOPIC,
    STATE_TABLE,
)

log = logging.getLogger("streams")

#: exit status of a worker that stopped because the ledger refused a record
LEDGER_REFUSED_EXIT = 70


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _short_error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {os.path.basename(last[0].filename)}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:500]


def build_app(config: StreamConfig) -> faust.App:
    policy = load_policy(config.policy_path) if config.policy_path else load_policy()
    settings: dict[str, Any] = {
        "broker": config.broker,
        "store": "memory://",
        "topic_partitions": config.partitions,
        "topic_disable_leader": True,
        "web_bind": config.web_bind,
        "web_host": config.web_bind,
        "consumer_auto_offset_reset": "earliest",
    }
    if config.web_port:
        settings["web_port"] = config.web_port
    if config.datadir:
        settings["datadir"] = config.datadir
    settings.update(config.extra_faust_settings)
    app = faust.App(config.app_id, **settings)

    inputs = app.topic(*INPUT_TOPICS, key_serializer="raw", value_serializer="raw")
    claims_topic = app.topic(CLAIMS_TOPIC, key_serializer="raw", value_serializer="raw", partitions=config.partitions)
    feed_topic = app.topic(FEED_TOPIC, key_serializer="raw", value_serializer="raw", partitions=config.partitions)
    decisions_topic = app.topic(DECISIONS_TOPIC, key_serializer="raw", value_serializer="raw")
    instructions_topic = app.topic(INSTRUCTIONS_TOPIC, key_serializer="raw", value_serializer="raw")
    rejections_topic = app.topic(REJECTIONS_TOPIC, key_serializer="raw", value_serializer="raw")

    # Like app.Table(...), with our table class (whole claims per changelog record).
    table = app.tables.add(
        TxnTable(app, name=STATE_TABLE, default=None, partitions=config.partitions,
                 schema=faust.Schema(key_serializer="raw", value_serializer="json"), beacon=app.tables.beacon, help="the engine's running state")
    )
    view = TableView(table)  # type: ignore[arg-type]

    def reject(origin: dict[str, Any], code: str, reason: str) -> dict[str, Any]:
        record = rejection_record(
            origin["topic"], origin["partition"], origin["offset"], _unb64(origin.get("key")),
            _unb64(origin["raw"]) or b"", code, reason, _now(),
        )
        METRICS.rejections.inc(code)
        return record

    def emit(feed_key: bytes, decisions: list, instructions: list, rejections: list, origin_key: bytes | None, ts: float | None, duplicate: bool = False) -> None:
        """Queue one claim's outputs. Synchronous on purpose: no await, so no half-sent claim."""
        for d in decisions:
            decisions_topic.send_soon(key=d["payee"]["id"].encode(), value=_json(d))
            METRICS.decisions.inc(d["outcome"])
        for i in instructions:
            instructions_topic.send_soon(key=i["payee"]["id"].encode(), value=_json(i))
        for r in rejections:
            rejections_topic.send_soon(key=origin_key, value=_json(r))
        feed_topic.send_soon(
            key=feed_key,
            value=_json({"decisions": decisions, "instructions": instructions, "rejections": rejections, "ts": ts, "duplicate": duplicate}),
        )

    # -- intake: bytes of the four input topics -> claims keyed by clause, or a rejection ----

    @app.agent(inputs, name="intake")
    async def intake_agent(stream):
        async for event in stream.events():
            message = event.message
            raw = event.value if isinstance(event.value, (bytes, bytearray)) else b""
            origin = {
                "topic": message.topic, "partition": message.partition, "offset": message.offset,
                "key": _b64(message.key), "raw": _b64(bytes(raw)),
            }
            ts = message.timestamp
            METRICS.events_in.inc(message.topic)
            try:
                claims = intake(message.topic, bytes(raw), policy)
            except Rejected as exc:
                emit(message.key or message.topic.encode(), [], [], [reject(origin, exc.code, exc.reason)], message.key, ts)
                continue
            except Exception as exc:  # one bad message must never stop the worker
                log.exception("intake: unexpected error on %s[%s]@%s", message.topic, message.partition, message.offset)
                emit(message.key or message.topic.encode(), [], [], [reject(origin, "internal-error", f"the pipeline failed on this message ({_short_error(exc)}); report it, then publish it again")], message.key, ts)
                continue
            for claim in claims:
                claims_topic.send_soon(key=claim.clause_id.encode(), value=_json({"claim": claim.to_dict(), "origin": origin, "ts": ts}))
                METRICS.claims.inc(claim.clause_id)

    # -- decide: one partition of clauses, its caps in the table -------------------------------

    @app.agent(claims_topic, name="decide")
    async def decide_agent(stream):
        async for event in stream.events():
            # Everything below up to the next iteration is synchronous: the table change and
            # every output of this claim are queued together, or (if the worker stops before
            # this event) not at all and the claim is redelivered.
            body = json.loads(event.value)
            origin = body["origin"]
            origin_key = _unb64(origin.get("key"))
            writes = ClaimWrites(view)  # type: ignore[arg-type]
            try:
                claim = Claim.from_dict(body["claim"])
                outcome = Engine(policy, writes).decide(claim)
            except Exception as exc:
                log.exception("decide: unexpected error on claim %s", body.get("claim", {}).get("event_id"))
                writes.writes.clear()
                outcome = Outcome(rejection=("internal-error", f"the pipeline failed on this claim ({_short_error(exc)}); report it"))
            clause_id = str(body["claim"].get("clause_id", ""))
            if writes.writes:
                table.apply_writes(event, claim_key(clause_id, claim.source, claim.event_id), writes.writes)  # type: ignore[attr-defined]
            rejections = [reject(origin, *outcome.rejection)] if outcome.rejection else []
            if outcome.duplicate:
                METRICS.duplicates.inc()
            emit(clause_id.encode(), outcome.decisions, outcome.instructions, rejections, origin_key, body.get("ts"), outcome.duplicate)

    # -- ledger: the feed, in batches, one database transaction per batch ---------------------

    ledger_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
    ledger_holder: dict[str, Any] = {}

    def open_ledger():
        from sinks.ledger import DEFAULT_LEDGER_URL, Ledger

        if "ledger" not in ledger_holder:
            ledger_holder["ledger"] = Ledger.open(config.ledger_url or DEFAULT_LEDGER_URL)
        return ledger_holder["ledger"]

    def record_batch(decisions: list, instructions: list, rejections: list):
        from sinks.ledger import LedgerUnavailable

        ledger = open_ledger()
        delay = 0.5
        while True:
            try:
                return ledger.record(decisions, instructions, rejections)
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
        for handler in logging.getLogger().handlers:
            try:
                handler.flush()
            except Exception:
                pass
        os._exit(LEDGER_REFUSED_EXIT)

    @app.agent(feed_topic, name="ledger")
    async def ledger_sink(stream):
        # WHY THIS IS THE ONLY SAFE SHAPE FOR THE MONEY PATH
        #
        # take_events() hands us up to N events and acknowledges them only after the body of
        # the loop has finished (its `finally` acks the batch). Faust commits offsets only up
        # to acknowledged events, and flushes the producer before each commit. So an offset of
        # the feed is committed only after the ledger transaction holding its records has
        # committed: a worker killed at any moment either had its batch committed in the
        # database (and the redelivery is then a no-op there, ids being primary keys) or not
        # (and the redelivery writes it). Nothing is lost and nothing is booked twice.
        #
        # Two ways that `finally` could ack a batch the database does not have, both closed:
        # * the body raising: a refused record (LedgerConflict, CapOverrun, InvalidRecord)
        #   exits the process on the spot (halt), before any ack; an unreachable database is
        #   retried in record_batch until it answers, never raised;
        # * the body being cancelled (worker shutdown) while the transaction runs in the
        #   executor: we then block until that transaction has finished; if it did not
        #   commit, we exit without acking.
        from sinks.ledger import LedgerError

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(ledger_executor, open_ledger)
        async for events in stream.take_events(config.sink_batch, within=config.sink_within):
            decisions: list = []
            instructions: list = []
            rejections: list = []
            stamps: list = []
            fresh_instructions: list = []
            for event in events:
                body = json.loads(event.value)
                decisions.extend(body["decisions"])
                instructions.extend(body["instructions"])
                rejections.extend(body["rejections"])
                if not body.get("duplicate"):
                    fresh_instructions.extend(body["instructions"])
                if body.get("ts"):
                    stamps.append(body["ts"])
            future = ledger_executor.submit(record_batch, decisions, instructions, rejections)
            try:
                result = await asyncio.shield(asyncio.wrap_future(future))
            except asyncio.CancelledError:
                try:
                    future.result()  # block: the loop is stopping anyway
                except BaseException as exc:  # noqa: BLE001
                    log.critical("ledger batch did not commit during shutdown (%s); exiting without acknowledging it", exc)
                    os._exit(LEDGER_REFUSED_EXIT)
                raise
            except LedgerError as exc:
                halt(exc)
                raise
            except Exception as exc:  # an unexpected failure of the money path: also halt
                halt(exc)
                raise
            now = time.time()
            with METRICS.lock:
                METRICS.ledger_batches.inc()
                for kind in ("decision", "instruction", "rejection"):
                    METRICS.ledger_new.inc(kind, by=getattr(result, f"new_{kind}s"))
                    METRICS.ledger_present.inc(kind, by=getattr(result, f"present_{kind}s"))
                for i in fresh_instructions:
                    METRICS.granted.inc(i["clause_id"], by=parse_amount(i["amount"]))
                for ts in stamps:
                    METRICS.latency.observe(max(0.0, now - ts))

    @app.page("/metrics")
    async def metrics_page(web, request):
        return web.text(METRICS.render(), content_type="text/plain; version=0.0.4")

    app.subsidy_config = config  # type: ignore[attr-defined]
    return app
