"""A claim the engine refuses during a replay: its rejection record carries the line's own bytes
and key, read again from the file (replay keeps only each line's offset while it decides)."""

from __future__ import annotations

import json

from whatif_events import THREE_PURCHASES, events_line

from rules.policy import load_policy
from subsidy.replay import replay


def test_a_reused_event_id_is_rejected_with_its_own_line(tmp_path):
    first, second, _ = THREE_PURCHASES
    reused = json.loads(second[1])
    reused["event_id"] = json.loads(first[1])["event_id"]  # same id, other content
    path = tmp_path / "events.jsonl"
    path.write_text("\r\n".join([events_line(*first), events_line(*second), events_line("compute-purchases", json.dumps(reused, ensure_ascii=False).encode())]) + "\n",
                    encoding="utf-8")

    class Sink:
        rejections: list[dict] = []

        def record(self, decisions, instructions, rejections, listings=()):
            self.rejections += rejections

    summary = replay(path, load_policy(), Sink())
    assert summary.rejected_by_code == {"event-id-reused": 1}
    record, = Sink.rejections
    assert record["offset"] == 3 and record["code"] == "event-id-reused"
    assert json.loads(record["original_text"]) == reused
    assert record["key"] == reused["beneficiary"]["uscc"]
