"""The topics of the pipeline and their partition counts; creating them up front.

Input topics and outputs are the wire contract's (/work/shared/contract.md). One internal
topic carries work between agents: ``subsidy-claims``, one claim per message, re-keyed from
the payee to the clause, so every running cap of a clause lives in one partition's table
(docs/DESIGN.md), and decide books each batch in the ledger in decision order. The ledger does
not read the three public output topics: those are keyed by payee (contract), which would let a
payment decided after a clawback reach the ledger before it on another partition, and the
ledger would then refuse a correct payment as a cap overrun.

``award-announcements`` has one partition. Count caps (20 benchmark scenarios a year, once
per product/subject) pay the first claims in the announcing system's order, and Kafka keeps
order only within a partition; the topic carries a few hundred messages a year, so nothing
is lost by not spreading it. The other inputs spread over ``partitions``: their caps are
amounts, whose totals do not depend on arrival order.
"""

from __future__ import annotations

import time
from typing import Mapping

from schemas.inputs import INPUT_TOPICS

CLAIMS_TOPIC = "subsidy-claims"
DECISIONS_TOPIC = "subsidy-decisions"
INSTRUCTIONS_TOPIC = "disbursement-instructions"
REJECTIONS_TOPIC = "subsidy-rejections"
OUTPUT_TOPICS = (INSTRUCTIONS_TOPIC, DECISIONS_TOPIC, REJECTIONS_TOPIC)
#: records of our own topics that the pipeline cannot read (streams/own_records.py), keyed like them
DEAD_LETTERS_TOPIC = "subsidy-dead-letters"
STATE_TABLE = "subsidy-state"
ORDERED_INPUTS = frozenset({"award-announcements"})


class TopicError(RuntimeError):
    pass


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-{STATE_TABLE}-changelog"


def input_partitions(topic: str, partitions: int) -> int:
    return 1 if topic in ORDERED_INPUTS else partitions


def expected_topics(app_id: str, partitions: int) -> dict[str, int]:
    """Every topic the app reads or writes -> the partition count it expects."""
    topics = {t: input_partitions(t, partitions) for t in INPUT_TOPICS}
    topics.update({CLAIMS_TOPIC: partitions, changelog_topic(app_id): partitions})
    topics.update({t: partitions for t in OUTPUT_TOPICS})
    topics[DEAD_LETTERS_TOPIC] = partitions
    return topics


def ensure_topics(bootstrap: str, topics: Mapping[str, int], *, replication: int = 1, timeout: float = 15.0) -> dict[str, int]:
    """Create missing topics; refuse (TopicError) an existing topic with another partition count.

    Returns the partition counts found. Idempotent: safe to run before every start.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError, for_code

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="subsidy-topics", request_timeout_ms=int(timeout * 1000),
                             bootstrap_timeout_ms=int(timeout * 1000))
    try:
        response = admin.create_topics(
            {name: {"num_partitions": n, "replication_factor": replication} for name, n in topics.items()},
            timeout_ms=int(timeout * 1000),
            raise_errors=False,
        )
        for t in response.get("topics", []):
            code = t.get("error_code", 0)
            if code and for_code(code) is not TopicAlreadyExistsError:
                raise TopicError(f"creating topic {t.get('name')!r} failed: {for_code(code).__name__} {t.get('error_message') or ''}")
        deadline = time.monotonic() + timeout
        while True:
            actual = {d["name"]: len(d.get("partitions") or []) for d in admin.describe_topics(list(topics)) if not d.get("error_code")}
            if all(actual.get(n) for n in topics) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        admin.close()
    missing = [n for n in topics if not actual.get(n)]
    if missing:
        raise TopicError(f"topics {missing} not visible on {bootstrap} after {timeout:.0f}s")
    wrong = [f"{n}: the app expects {want} partitions, the broker has {actual[n]}" for n, want in topics.items() if actual[n] != want]
    if wrong:
        raise TopicError("partition-count mismatch (recreate the topics or set SUBSIDY_PARTITIONS): " + "; ".join(wrong))
    return actual
