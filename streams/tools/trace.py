"""Where an id went: every record of the pipeline's topics that mentions it, in broker order.

For an operator (or a failing test) asking "why did the ledger refuse clawback X of payment Y?":
``subsidy trace X Y --broker HOST:PORT`` reads the internal topics (claims, state changelog)
the decisions, instructions and dead-letter topics, and prints each record that names one of
the ids (instruction, decision or event ids) with its partition, offset, producer timestamp and
what it says, then the consumer group's committed offsets of the partitions involved. The claims
of the events behind the matched decisions are looked up too, so one line per hop shows which
worker stage produced what, and in which order the broker stored it.

It reads every record of those topics (a full scan, with progress on stderr): a tool for
incidents and tests, not for the hot path.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from dataclasses import dataclass
from typing import Iterable

from streams.topics import CLAIMS_TOPIC, DEAD_LETTERS_TOPIC, DECISIONS_TOPIC, INSTRUCTIONS_TOPIC, changelog_topic


@dataclass(frozen=True)
class TraceHit:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    summary: str

    def line(self) -> str:
        stamp = dt.datetime.fromtimestamp(self.timestamp_ms / 1000, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        return f"{self.topic}[{self.partition}]@{self.offset}  {stamp}Z  {self.summary}"


def _short(identifier: str | None) -> str:
    return "-" if identifier is None else identifier[:12]


def summarise(topic: str, value: bytes, needles: set[str]) -> tuple[str, set[str]]:
    """What one record says about the ids, and the event ids of the decisions it holds for them."""
    try:
        return _summary(topic, json.loads(value), needles)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        # anyone can write to our topics: a record the workers cannot read either (own_records.py)
        return f"a record of no shape the pipeline writes ({type(exc).__name__}); the workers dead-letter it ({DEAD_LETTERS_TOPIC})", set()


def _summary(topic: str, body, needles: set[str]) -> tuple[str, set[str]]:
    events: set[str] = set()
    if topic == DEAD_LETTERS_TOPIC:
        return f"dead letter of {body['topic']}[{body['partition']}]@{body['offset']}: {body['reason']}", events
    if topic == CLAIMS_TOPIC:
        claim = body["claim"]
        origin = body["origin"]
        return (f"claim {claim['event_id']} ({claim['clause_id']}, corrects {claim.get('corrects')}) "
                f"from {origin['topic']}[{origin['partition']}]@{origin['offset']}"), events
    if topic in (DECISIONS_TOPIC, INSTRUCTIONS_TOPIC):
        decisions = [body] if topic == DECISIONS_TOPIC else []
        instructions = [body] if topic == INSTRUCTIONS_TOPIC else []
        parts = [f"decision {_short(d['decision_id'])} {d['outcome']} event {d['event_id']}" for d in decisions]
        parts += [f"{i['kind']} {_short(i['instruction_id'])} {i['amount']} corrects {_short(i.get('corrects'))}" for i in instructions]
        events |= {d["event_id"] for d in decisions if {d["decision_id"], d.get("instruction_id"), d["event_id"]} & needles}
        events |= {e for i in instructions if {i["instruction_id"], i.get("corrects")} & needles for e in i["event_ids"]}
        return "; ".join(parts), events
    writes = body["w"]  # a changelog record: one claim's writes (streams/state.py)
    parts = []
    for key, record in writes.items():
        if not key.startswith('["claim"') or not isinstance(record, dict):
            continue
        decision = record.get("decision") or {}
        instructions = record.get("instructions") or []
        parts.append(f"state {key} = {decision.get('outcome')} "
                     + " ".join(f"{i['kind']} {_short(i['instruction_id'])}" for i in instructions))
        text = key + json.dumps(record)
        if any(n in text for n in needles):
            events.add(json.loads(key)[3])
    return "; ".join(parts), events


def _scan(consumer, topics: Iterable[str], needles: set[str], progress, idle_seconds: float = 10.0) -> tuple[list[TraceHit], set[str]]:
    """Read every record of ``topics`` from the beginning: each partition up to its end offset,
    then until a poll brings nothing more (the local broker reports end offsets short by up to
    a batch), giving up on a partition that brings nothing for ``idle_seconds``."""
    from kafka import TopicPartition

    hits: list[TraceHit] = []
    events: set[str] = set()
    encoded = [n.encode() for n in needles]
    for topic in topics:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            continue
        consumer.assign(tps)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(tps)
        read = 0
        last_record = time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                for message in records:
                    read += 1
                    if message.value and any(n in message.value for n in encoded):
                        summary, found = summarise(topic, message.value, needles)
                        hits.append(TraceHit(topic, message.partition, message.offset, message.timestamp, summary))
                        events |= found
            now = time.monotonic()
            if batch:
                last_record = now
                continue
            if all(consumer.position(tp) >= ends[tp] for tp in tps) or now - last_record > idle_seconds:
                break
        progress(f"trace: {topic}: {read:,} records read")
    return hits, events


def trace(bootstrap: str, ids: Iterable[str], app_id: str, progress=lambda text: print(text, file=sys.stderr)) -> list[str]:
    """Lines describing every record that mentions ``ids`` (and the claims of their events)."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaTimeoutError

    from streams.tools.publish import BrokerUnreachable

    needles = {i for i in ids if i}
    # an unreachable broker is said in 5 s, not 30 (where this kafka-python has the setting)
    quick = {"bootstrap_timeout_ms": 5000} if "bootstrap_timeout_ms" in KafkaConsumer.DEFAULT_CONFIG else {}
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="subsidy-trace", **quick)
    except KafkaTimeoutError:  # kafka-python 3: "Unable to bootstrap from ..."
        raise BrokerUnreachable(f"no broker answered at {bootstrap}") from None
    try:
        hits, events = _scan(consumer, (changelog_topic(app_id), DECISIONS_TOPIC, INSTRUCTIONS_TOPIC, DEAD_LETTERS_TOPIC), needles, progress)
        claim_hits, _ = _scan(consumer, (CLAIMS_TOPIC,), events | needles, progress)
    finally:
        consumer.close()
    hits = sorted(claim_hits + hits, key=lambda h: (h.topic != CLAIMS_TOPIC, h.topic, h.partition, h.offset))
    lines = [f"records mentioning {', '.join(sorted(needles))} (events {', '.join(sorted(events)) or '-'}):"]
    lines += ["  " + h.line() for h in hits] or ["  none"]
    involved = sorted({(h.topic, h.partition) for h in hits if h.topic == CLAIMS_TOPIC})
    lines.append(f"committed offsets of group {app_id} (next record to read):")
    lines += [f"  {topic}[{partition}] {offset}" for (topic, partition), offset in committed_offsets(bootstrap, app_id, involved)] or ["  none"]
    return lines


def committed_offsets(bootstrap: str, group: str, partitions: list[tuple[str, int]]) -> list[tuple[tuple[str, int], int | None]]:
    """The group's committed offsets, read by a consumer that never joins the group (OffsetFetch only)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, client_id="subsidy-trace")
    try:
        return [(tp, consumer.committed(TopicPartition(*tp))) for tp in partitions]
    finally:
        consumer.close()
