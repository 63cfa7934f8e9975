from __future__ import annotations

import copy
import dataclasses

import pytest

from sinks.ledger import Ledger, LedgerConflict
from tests.ledger.factory import TIMEZONE, purchase, run


def sample():
    return run(
        [
            purchase("e1", 1, "1000.00"),
            purchase("e2", 2, "500.00"),
            purchase("r1", 1, "400.00", refund_of="e1"),
            ("compute-purchases", {"event_id": "x"}),
            purchase("e3", 3, "100.00", when="2025-12-31T23:30:00+08:00"),
        ]
    )


def test_record_counts_totals_and_idempotency(ledger_url):
    out = sample()
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        first = ledger.record(out.decisions, out.instructions, out.rejections)
        assert (first.new_decisions, first.new_instructions, first.new_rejections) == (4, 4, 1)
        again = ledger.record(out.decisions, out.instructions, out.rejections)
        assert again.new == 0 and again.present == 9
        assert ledger.counts() == {"decisions": 4, "instructions": 4, "rejections": 1}
        # 60% of 1000 - 60% of 400 refunded; 60% of 500; 60% of 100 in fiscal year 2025
        assert ledger.granted_totals() == {"compute-voucher": {2026: 60000 - 24000 + 30000, 2025: 6000}}
        assert ledger.verify_chain() == []


def test_reopen_is_an_upgrade_noop(ledger_url):
    out = sample()
    Ledger.open(ledger_url, timezone=TIMEZONE).close()
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, out.rejections)
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        assert ledger.counts()["instructions"] == 4


def test_same_id_different_content_is_a_conflict_naming_fields(ledger_url):
    out = sample()
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, out.rejections)
        forged = {**out.instructions[1].to_wire(), "amount": "999.00"}  # a wire dict: read into a record before booking
        with pytest.raises(LedgerConflict) as info:
            ledger.record([], [forged], [])
        assert forged["instruction_id"] in str(info.value) and "amount" in info.value.fields
        decision = dataclasses.replace(out.decisions[0], reason="edited")
        with pytest.raises(LedgerConflict, match="reason"):
            ledger.record([decision], [], [])
        assert ledger.counts() == {"decisions": 4, "instructions": 4, "rejections": 1}


def test_rejection_repeat_with_other_timestamp_is_a_noop(ledger_url):
    out = sample()
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record([], [], out.rejections)
        again = copy.deepcopy(out.rejections)
        again[0]["rejected_at"] = "2026-05-05T00:00:00+00:00"
        assert ledger.record([], [], again).present_rejections == 1
        again[0]["reason"] = "other"
        with pytest.raises(LedgerConflict, match="reason"):
            ledger.record([], [], again)


def test_conflict_inside_one_batch(ledger_url):
    out = sample()
    forged = dataclasses.replace(out.instructions[0], amount=100)
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        with pytest.raises(LedgerConflict):
            ledger.record([], [out.instructions[0], forged], [])
        assert ledger.counts()["instructions"] == 0


def test_a_rejection_booked_before_v1_1_is_the_same_rejection_with_the_size_fields(ledger_url):
    """A batch booked by a v1 worker and redelivered to a v1.1 one after the upgrade is a repeat."""
    out = sample()
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record([], [], out.rejections)
        again = copy.deepcopy(out.rejections)
        again[0].update(original_length=10, original_sha256="0" * 64, original_truncated=False)
        assert ledger.record([], [], again).present_rejections == 1
