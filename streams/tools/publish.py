"""Publish a JSONL file of events to the input topics, as an upstream system would.

Each line is ``{"topic": ..., "value": {...}}`` (sent as compact UTF-8 JSON) or
``{"topic": ..., "raw": "..."}`` (the text sent as its UTF-8 bytes, e.g. malformed JSON).
Key = the beneficiary's identifier (USCC, person id or team ref) when the value has one.
Uses kafka-python: a client that is not the pipeline's own. The whole file is checked before the
first message is sent, so a file with a bad line sends nothing.
"""

from __future__ import annotations

import json
from typing import Callable, Collection, Iterable, Iterator

from streams.topics import INTAKE_TOPICS
from subsidy.replay import _key_of

BOOTSTRAP_TIMEOUT_S = 15


class PublishError(Exception):
    """A line of the file that cannot be published; nothing was sent."""


class BrokerUnreachable(Exception):
    """No broker answered at the address given; nothing was sent."""


class NotAcknowledged(Exception):
    """The broker did not acknowledge some messages within the delivery timeout; the others arrived."""


def iter_messages(lines: Iterable[bytes], topics: Collection[str] | None = None) -> Iterator[tuple[str, bytes | None, bytes]]:
    """(topic, key, value) of each envelope line; ``topics``: the only topics a line may name."""
    for number, line in enumerate(lines, 1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            envelope = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PublishError(f"line {number}: not a JSON envelope ({exc})") from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("topic"), str) or ("value" in envelope) == ("raw" in envelope):
            raise PublishError(f'line {number}: must be {{"topic": ..., "value": {{...}}}} or {{"topic": ..., "raw": "..."}}')
        if topics is not None and envelope["topic"] not in topics:
            raise PublishError(f"line {number}: topic {envelope['topic']!r} is not an input topic ({', '.join(topics)}): no worker would read it")
        if "raw" in envelope:
            raw = envelope["raw"].encode("utf-8")
            try:
                key = _key_of(json.loads(raw))
            except Exception:
                key = None
        else:
            value = envelope["value"]
            raw = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            key = _key_of(value)
        yield envelope["topic"], key, raw


def publish_file(path: str, bootstrap: str, *, progress: Callable[[int], None] | None = None,
                 checked: Callable[[int], None] | None = None, client_id: str = "subsidy-publish") -> int:
    """Send every line of ``path`` to the input topics; returns the number of messages acknowledged
    by the broker. ``checked(n)``: the file holds n messages, all valid, and sending begins.
    ``PublishError`` or ``BrokerUnreachable``: nothing was sent. ``NotAcknowledged``: some were not."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    with open(path, "rb") as source:
        messages = sum(1 for _ in iter_messages(source, INTAKE_TOPICS))
    if checked is not None:
        checked(messages)
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, acks="all", linger_ms=5,
                                 # retried until delivery_timeout_ms: a topic created a moment ago may
                                 # have no leader yet (NotLeaderForPartition) for longer than a few retries
                                 max_in_flight_requests_per_connection=1,  # keep file order per partition
                                 bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_S * 1000)
    except KafkaTimeoutError:  # kafka-python 3: "Unable to bootstrap from ..."
        raise BrokerUnreachable(f"no broker answered at {bootstrap} within {BOOTSTRAP_TIMEOUT_S} s") from None
    sent = 0
    refused: list[BaseException] = []
    try:
        with open(path, "rb") as source:
            for topic, key, raw in iter_messages(source):
                producer.send(topic, key=key, value=raw).add_errback(refused.append)
                sent += 1
                if progress is not None:
                    progress(1)
        producer.flush()
    finally:
        producer.close()
    if refused:
        raise NotAcknowledged(f"{len(refused):,} of {sent:,} messages were not acknowledged by {bootstrap} "
                              f"(first: {type(refused[0]).__name__}: {refused[0]})")
    return sent
