"""`subsidy trace` reads what anyone may have written to the pipeline's topics."""

from __future__ import annotations

import json

from streams.tools.trace import summarise
from streams.topics import CLAIMS_TOPIC, DEAD_LETTERS_TOPIC


def test_a_record_of_no_shape_we_write_is_described_not_a_crash():
    for value in (b"not a claim abc123", b'{"claim": 1} abc123', b'["abc123"]', b'{"w": ["abc123"]}'):
        summary, events = summarise(CLAIMS_TOPIC, value, {"abc123"})
        assert "no shape the pipeline writes" in summary and DEAD_LETTERS_TOPIC in summary and not events


def test_a_dead_letter_says_where_its_record_was_and_why():
    letter = {"topic": CLAIMS_TOPIC, "partition": 2, "offset": 41, "reason": "not JSON: abc123", "value": "YWJjMTIz"}
    summary, _ = summarise(DEAD_LETTERS_TOPIC, json.dumps(letter).encode(), {"abc123"})
    assert summary == f"dead letter of {CLAIMS_TOPIC}[2]@41: not JSON: abc123"
