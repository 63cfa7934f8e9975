"""What the replay holds in memory changed (each line's offset, not its bytes; decided claims
pickled, rules/compact_state.py); what it books did not."""

from __future__ import annotations

import json

from whatif_events import THREE_PURCHASES, events_line

from rules.engine import Engine
from rules.event_time import in_event_time_order
from rules.inputs import EXCLUSIONS_TOPIC
from rules.intake import Rejected, intake
from rules.policy import load_policy
from sinks.ledger import Ledger
from subsidy.replay import parse_envelope, replay


def test_a_reused_event_id_is_rejected_with_its_own_line(tmp_path):
    """A claim the engine refuses: its rejection record has the line's own bytes and key, read again from the file."""
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


def test_the_replay_books_what_a_plain_dict_state_books(small_year, tmp_path):
    """Same rows, same content hashes: the replay (its state in rules.compact_state, lines re-read by
    offset) against the small year's claims decided over a plain dict and booked in one batch."""
    path, _ = small_year
    policy = load_policy()
    replayed = Ledger.open(f"sqlite:///{tmp_path}/replayed.sqlite", timezone=policy.timezone)
    replay(path, policy, replayed, batch_lines=300)

    claims = []
    for line in path.read_bytes().splitlines():
        try:
            topic, raw, _ = parse_envelope(line)
            if topic != EXCLUSIONS_TOPIC:
                claims.extend(intake(topic, raw, policy))
        except Rejected:
            continue
    engine = Engine(policy, {})
    decisions, instructions = [], []
    for claim in in_event_time_order(claims):
        outcome = engine.decide(claim)
        if outcome.rejection is None and not outcome.duplicate:
            decisions += outcome.decisions
            instructions += outcome.instructions
    reference = Ledger.open(f"sqlite:///{tmp_path}/reference.sqlite", timezone=policy.timezone)
    reference.record(decisions, instructions, [])

    def rows(ledger, statement):
        with ledger.engine.connect() as conn:
            return conn.exec_driver_sql(statement).all()

    # the same rows in the same order; their sequence numbers and chain hashes differ, as each
    # booked batch takes one entry of the chain for its decisions (sinks/ledger/chain.py)
    for statement in ("SELECT decision_id, content_hash FROM ledger_decisions ORDER BY decision_id",
                      "SELECT instruction_id, content_hash FROM ledger_instructions ORDER BY journal_seq",
                      "SELECT instruction_id, debit_account, credit_account, amount_fen, instruction_hash FROM ledger_journal ORDER BY seq",
                      "SELECT scope, kind, cap_limit, used FROM ledger_cap_usage ORDER BY scope"):
        assert rows(replayed, statement) == rows(reference, statement), statement
    assert len(rows(replayed, "SELECT seq FROM ledger_journal")) > 1000
    replayed.close()
    reference.close()
