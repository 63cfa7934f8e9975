"""Every record the pipeline produces is bounded (contract v1.1, "Sizes"): the worst case of each
kind, built from inputs whose every field is as long as the input contract allows and made of
characters JSON escapes to six bytes, stays under MAX_RECORD_BYTES (streams/stage_outputs.py),
which every topic the pipeline writes takes (streams/topics.py)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from types import SimpleNamespace

import pytest

from rules.engine import Engine
from rules.intake import intake
from rules.policy import load_policy
from schemas.outputs import MAX_ORIGINAL_BYTES, Rejection, rejection_record
from streams.stage_outputs import MAX_RECORD_BYTES, StageOutputs
from streams.stages import origin_of
from streams.state import ClaimWrites, compact_json

POLICY = load_policy()
AT = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
ESCAPED = "\x01"  # one character, six bytes of JSON (\u0001)
LONG_NAME, LONG_ID = ESCAPED * 256, ESCAPED * 128
HUGE_KEY = ESCAPED.encode() * 5000


def _purchase(event_id: str, **extra) -> dict:
    return {"event_id": event_id, "source": "scc-billing", "occurred_at": "2026-03-02T10:15:00+08:00",
            "beneficiary": {"uscc": "91510100MA61R7XX5F", "name": LONG_NAME},
            "provider": {"uscc": "91510107MA6CB2K44T", "name": LONG_NAME},
            "invoice_no": LONG_NAME, "amount": "1250000.00", **extra}


def _award(award: str, **extra) -> dict:
    return {"event_id": LONG_ID[: -len(award)] + award, "source": "gov-review-system", "occurred_at": "2026-06-15T09:00:00+08:00",
            "beneficiary": {"team_ref": "UESTC/" + "a" * 58, "name": LONG_NAME}, "award": award,
            "approval_ref": LONG_NAME, "subject": LONG_NAME, **extra}


#: (topic, message): the longest fields each clause's records copy; a refund also rewrites its purchase
WORST_INPUTS = [
    ("compute-purchases", _purchase(LONG_ID)),
    ("compute-purchases", _purchase(LONG_ID[:-1] + "r", refund_of=LONG_ID, amount="1000.00")),
    ("award-announcements", _award("wu-wenjun-award", grade=LONG_NAME)),
    ("award-announcements", {**_award("exhibition", base_amount="100000.00"),
                             "beneficiary": {"uscc": "91510100MA61R7XX5F", "name": LONG_NAME}}),
]


def _message(topic: str, offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=3, offset=offset)


def test_a_rejection_of_a_900_kb_input_is_bounded_and_names_the_whole_input():
    raw = ESCAPED.encode() * 900_000  # UTF-8, so kept as text too, each byte escaped to six
    record = rejection_record("compute-purchases", 3, 7, HUGE_KEY, raw, "malformed-json", ESCAPED * 10_000, AT)
    size = len(compact_json(record)) + len(record["key"].encode())
    assert size <= MAX_RECORD_BYTES, size
    assert record["original_length"] == 900_000 and record["original_truncated"] is True
    assert record["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(base64.b64decode(record["original"])) == MAX_ORIGINAL_BYTES
    Rejection.model_validate(record)


def test_a_claim_of_a_900_kb_input_carries_64_kib_of_it_and_a_rejection_made_from_it_is_intakes():
    topic, message = WORST_INPUTS[0]
    raw = json.dumps(message, ensure_ascii=False).encode() + b" " * 900_000  # valid JSON: trailing whitespace
    claims = intake(topic, raw, POLICY)
    origin = origin_of(_message(topic, 11), HUGE_KEY[:1024], raw)
    record = compact_json({"claim": claims[0].to_dict(), "origin": origin, "ts": 1.7e9})
    assert len(record) + len(claims[0].clause_id) <= MAX_RECORD_BYTES
    assert origin["length"] == len(raw) and len(base64.b64decode(origin["raw"])) == MAX_ORIGINAL_BYTES
    # decide rejects from the claim's origin; intake would have from the whole input: the same record
    from_origin = rejection_record(topic, 3, 11, HUGE_KEY[:1024], base64.b64decode(origin["raw"]), "internal-error", "x", AT,
                                   original_length=origin["length"], original_sha256=origin["sha256"])
    assert from_origin == rejection_record(topic, 3, 11, HUGE_KEY[:1024], raw, "internal-error", "x", AT)


def test_an_input_under_64_kib_travels_whole_in_its_claim():
    raw = b'{"event_id": "x"}'
    assert origin_of(_message("model-invoices", 1), b"k", raw) == {
        "topic": "model-invoices", "partition": 3, "offset": 1, "key": "aw==", "raw": base64.b64encode(raw).decode()}


def test_changelog_records_decisions_and_instructions_of_the_longest_fields_are_bounded():
    """One changelog record per claim holds its state writes (streams/state.py): its decision and
    instructions, and for a refund the purchase's rewritten too."""
    state: dict = {}
    largest = {"changelog": 0, "decision": 0, "instruction": 0}
    for offset, (topic, message) in enumerate(WORST_INPUTS):
        for claim in intake(topic, json.dumps(message, ensure_ascii=False).encode(), POLICY):
            writes = ClaimWrites(state)
            outcome = Engine(POLICY, writes).decide(claim)
            assert outcome.rejection is None, outcome.rejection
            largest["changelog"] = max(largest["changelog"], len(compact_json({"w": writes.writes})))
            largest["decision"] = max([largest["decision"]] + [len(compact_json(d.to_wire())) for d in outcome.decisions])
            largest["instruction"] = max([largest["instruction"]] + [len(compact_json(i.to_wire())) for i in outcome.instructions])
            state.update(writes.writes)
    assert largest["changelog"] < 40_000 and largest["decision"] < 15_000 and largest["instruction"] < 15_000, largest


def test_stage_outputs_refuse_a_record_over_the_bound():
    outputs = StageOutputs()
    outputs.put("subsidy-rejections", b"k", b"x" * (MAX_RECORD_BYTES - 1))
    with pytest.raises(AssertionError, match="over MAX_RECORD_BYTES"):
        outputs.put("subsidy-rejections", b"k", b"x" * MAX_RECORD_BYTES)
    assert len(outputs) == 1
