"""Records of our own topics read back, a poison record told from them, and its dead letter
(streams/own_records.py): pure, no broker."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from rules.intake import intake
from rules.policy import load_policy
from schemas.inputs import INPUT_TOPICS, PAYMENT_VOIDS_TOPIC
from streams.own_records import (
    DEAD_LETTER_BYTES,
    Unreadable,
    claim_record,
    dead_letter,
    dead_letter_key,
    read_changelog_record,
    read_claim_record,
)
from streams.state import compact_json

POLICY = load_policy()
EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)


def intake_records() -> list[tuple[bytes, bytes]]:
    """(key, value) of every claim intake makes of the example inputs (an operator's void too), as
    the intake agent writes them."""
    records = []
    for offset, topic in enumerate((*INPUT_TOPICS, PAYMENT_VOIDS_TOPIC)):
        raw = (EXAMPLES / f"{topic}.json").read_bytes()
        origin = {"topic": topic, "partition": 0, "offset": offset, "key": base64.b64encode(b"payee").decode(),
                  "raw": base64.b64encode(raw).decode()}
        for claim in intake(topic, raw, POLICY):
            records.append((claim.clause_id.encode(), claim_record(claim, origin, 1764576000.25)))
    return records


def test_every_claim_intake_writes_is_read_back():
    records = intake_records()
    assert len(records) >= len(INPUT_TOPICS) + 1 and read_claim_record(*records[-1]).claim.voids is not None
    for key, value in records:
        record = read_claim_record(key, value)
        assert claim_record(record.claim, record.origin, record.ts) == value
        assert record.origin_key == b"payee" and record.ts == 1764576000.25


def test_a_claim_of_an_input_intake_kept_only_the_first_64_kib_of_is_read_back():
    key, value = intake_records()[0]
    body = json.loads(value)
    body["origin"].update(length=900_000, sha256=hashlib.sha256(b"the whole input").hexdigest())
    assert read_claim_record(key, json.dumps(body).encode()).origin["length"] == 900_000


def _edited(edit) -> tuple[bytes, bytes]:
    key, value = intake_records()[0]
    body = json.loads(value)
    edit(body)
    return key, json.dumps(body).encode()


def _set(path: str, value):
    def edit(body):
        *parents, last = path.split(".")
        target = body
        for name in parents:
            target = target[name]
        target[last] = value
    return edit


def _drop(path: str):
    def edit(body):
        *parents, last = path.split(".")
        target = body
        for name in parents:
            target = target[name]
        del target[last]
    return edit


VALID_KEY = intake_records()[0][0]

POISON_CLAIMS = {
    "no value (a tombstone)": (VALID_KEY, None, "no value"),
    "not JSON": (b"compute-voucher", b"not a claim", "not JSON"),
    "not UTF-8": (b"compute-voucher", b"\xff\xfe\x00garbage\x9c", "not UTF-8"),
    "nested too deeply": (b"compute-voucher", b"[" * 200_000, "nested too deeply"),
    "a JSON list": (b"compute-voucher", b"[1, 2, 3]", "a JSON list, not an object"),
    "another shape": (b"compute-voucher", b'{"event_id": "x"}', "its fields are"),
    "an extra field": (*_edited(_set("extra", 1)), "its fields are"),
    "no ts": (*_edited(_drop("ts")), "its fields are"),
    "origin of another shape": (*_edited(_set("origin", {"topic": "compute-purchases"})), "origin is not an object"),
    "origin on a topic intake does not read": (*_edited(_set("origin.topic", "subsidy-claims")), "not an input topic"),
    "origin offset negative": (*_edited(_set("origin.offset", -1)), "whole numbers"),
    "origin partition a bool": (*_edited(_set("origin.partition", True)), "whole numbers"),
    "origin raw not base64": (*_edited(_set("origin.raw", "not base64!")), "origin.raw is not base64"),
    "origin cut without its sha256": (*_edited(_set("origin.length", 10**6)), "origin is not an object"),
    "origin cut, longer than its length": (*_edited(lambda body: body["origin"].update(length=1, sha256="0" * 64)), "origin.length and origin.sha256"),
    "origin cut, sha256 not hex": (*_edited(lambda body: body["origin"].update(length=10**6, sha256="z" * 64)), "origin.length and origin.sha256"),
    "origin key a number": (*_edited(_set("origin.key", 5)), "origin.key is int"),
    "ts text": (*_edited(_set("ts", "yesterday")), "ts is not a number"),
    "claim a list": (*_edited(_set("claim", [])), "claim is a JSON list"),
    "claim with a field Claim does not have": (*_edited(_set("claim.bonus", "1.00")), "Claim.from_dict refuses"),
    "claim without a field": (*_edited(_drop("claim.fingerprint")), "Claim.from_dict refuses"),
    "base as text": (*_edited(_set("claim.base", "125000000")), "claim.base is a str"),
    "fiscal year a bool": (*_edited(_set("claim.fiscal_year", True)), "claim.fiscal_year is a bool"),
    "payee without id": (*_edited(_set("claim.payee", {"kind": "enterprise", "name": "x"})), "claim.payee is not"),
    "a void without its reason": (*_edited(_set("claim.voids", {"instruction_id": "a" * 32, "source": "scc-billing", "event_id": "p-1", "operator": "li.na"})),
                                  "claim.voids is not an object of text"),
    "occurred_at not a time": (*_edited(_set("claim.occurred_at", "March")), "claim.occurred_at or claim.day"),
    "occurred_at without offset": (*_edited(_set("claim.occurred_at", "2026-03-02T10:15:00")), "claim.occurred_at or claim.day"),
    "keyed by another clause": (b"model-usage", intake_records()[0][1], "its key is not the claims key of its clause"),
    "no key": (None, intake_records()[0][1], "its key is not the claims key of its clause"),
}


@pytest.mark.parametrize("key,value,problem", POISON_CLAIMS.values(), ids=list(POISON_CLAIMS))
def test_a_claims_record_intake_did_not_write_is_unreadable_with_a_reason_to_act_on(key, value, problem):
    with pytest.raises(Unreadable) as refused:
        read_claim_record(key, value)
    reason = refused.value.reason
    assert problem in reason, reason
    assert reason.startswith("not a claim record of the intake agent: ")
    assert "find the client that wrote this record" in reason and "\n" not in reason and len(reason) < 600


def test_the_state_changelog_reads_what_apply_writes_writes():
    writes = {'["cap", "compute-voucher", "programme-year", "2026"]': {"amount": 125, "count": 1},
              '["claim", "compute-voucher", "scc-billing", "e-1"]': {"fingerprint": "f", "decision": {"granted": "1.25"}}}
    assert read_changelog_record(compact_json({"w": writes})) == writes


POISON_CHANGELOG = {
    "no value": None,
    "not JSON": b"not a state record",
    "not UTF-8": b"\xff\xfe\x00\x9c",
    "nested too deeply": b"[" * 200_000,
    "a JSON list": b'[{"w": {}}]',
    "no w": b'{"x": {"k": {}}}',
    "w and more": b'{"w": {"k": {}}, "x": 1}',
    "w a number": b'{"w": 5}',
    "no writes": b'{"w": {}}',
    "a value that is not an object": b'{"w": {"k": 5}}',
}


@pytest.mark.parametrize("value", POISON_CHANGELOG.values(), ids=list(POISON_CHANGELOG))
def test_a_changelog_record_apply_writes_did_not_write_is_unreadable(value):
    with pytest.raises(Unreadable) as refused:
        read_changelog_record(value)
    assert refused.value.reason.startswith("not a state record of the decide agent: ")
    assert "the state was restored without it" in refused.value.reason


def test_a_dead_letter_says_where_the_record_was_what_it_held_why_and_when():
    record = dead_letter("subsidy-claims", 2, 17, b"compute-voucher", b"not a claim",
                         dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.timezone.utc), "why", NOW)
    assert record == {
        "dead_letter_id": record["dead_letter_id"],
        "topic": "subsidy-claims",
        "partition": 2,
        "offset": 17,
        "timestamp": "2026-11-30T09:00:00+00:00",
        "key": base64.b64encode(b"compute-voucher").decode(),
        "key_length": 15,
        "value": base64.b64encode(b"not a claim").decode(),
        "value_length": 11,
        "value_sha256": hashlib.sha256(b"not a claim").hexdigest(),
        "reason": "why",
        "dead_lettered_at": "2026-12-01T08:00:00+00:00",
    }
    # read again later (a redelivery, another worker's restore): the same id
    again = dead_letter("subsidy-claims", 2, 17, b"compute-voucher", b"not a claim", None, "why", NOW + dt.timedelta(hours=1))
    assert again["dead_letter_id"] == record["dead_letter_id"]
    elsewhere = dead_letter("subsidy-claims", 2, 18, b"compute-voucher", b"not a claim", None, "why", NOW)
    assert elsewhere["dead_letter_id"] != record["dead_letter_id"]


def test_a_dead_letter_carries_at_most_64_kib_of_key_and_value_with_their_lengths_and_the_values_digest():
    value = bytes(range(256)) * 3600  # 921,600 bytes
    key = b"k" * 100_000
    record = dead_letter("subsidy-claims", 0, 5, key, value, None, "why", NOW)
    assert base64.b64decode(record["value"]) == value[:DEAD_LETTER_BYTES] and record["value_length"] == len(value)
    assert record["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert base64.b64decode(record["key"]) == key[:DEAD_LETTER_BYTES] and record["key_length"] == len(key)
    assert dead_letter_key(key) == key[:DEAD_LETTER_BYTES] and dead_letter_key(None) is None
    assert len(compact_json(record)) + len(dead_letter_key(key)) < 250_000  # far below Kafka's 1 MiB


def test_a_dead_letter_of_a_record_without_key_or_value():
    record = dead_letter("subsidy-test-subsidy-state-changelog", 1, 0, None, None, None, "why", NOW)
    assert (record["key"], record["key_length"], record["value"], record["value_length"], record["value_sha256"]) == (None,) * 5


def test_the_readers_and_the_dead_letter_need_no_kafka():
    import subprocess
    import sys

    loaded = subprocess.run([sys.executable, "-c", "import sys, streams.own_records; print(' '.join(sys.modules))"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert not [m for m in loaded if m.split(".")[0] in ("kafka", "aiokafka", "faust", "sqlalchemy")]
