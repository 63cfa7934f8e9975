"""The ledger books an instruction's value date in the time zone of the policy it was decided
under (``policy.timezone``), not in a zone of its own (issue 24)."""

from __future__ import annotations

import csv
import io

import pytest

from rules.policy import DEFAULT_POLICY_PATH, load_policy
from sinks.cli import main
from sinks.ledger import Ledger, LedgerError
from tests.ledger.factory import TIMEZONE, purchase, run

LATE = "2026-03-10T23:30:00+00:00"  # 2026-03-11 07:30 in Asia/Shanghai


def policy_in(zone: str, tmp_path):
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    assert f"timezone: {TIMEZONE}\n" in text
    path = tmp_path / f"policy-{zone.replace('/', '-')}.yaml"
    path.write_text(text.replace(f"timezone: {TIMEZONE}\n", f"timezone: {zone}\n"), encoding="utf-8")
    policy = load_policy(path)
    assert policy.timezone == zone
    return policy


@pytest.mark.parametrize(("zone", "day"), [("Asia/Shanghai", "2026-03-11"), ("UTC", "2026-03-10"), ("America/Chicago", "2026-03-10")])
def test_value_date_is_the_day_in_the_policy_time_zone(zone, day, ledger_url, tmp_path):
    policy = policy_in(zone, tmp_path) if zone != TIMEZONE else load_policy()
    out = run([purchase("late", 1, "1000.00", when=LATE)], under=policy)
    assert [i.occurred_at for i in out.instructions] == [LATE]
    with Ledger.open(ledger_url, timezone=policy.timezone) as ledger:
        ledger.record(out.decisions, out.instructions, out.rejections)
        assert [d for (d, _) in ledger.dated_instructions()] == [day]
        assert [i["instruction_id"] for i in ledger.instructions(date_from=day, date_to=day)] == [out.instructions[0].instruction_id]
    target = tmp_path / "day.csv"
    assert main(["ledger", "export", "--ledger", ledger_url, "--format", "csv", "--out", str(target)]) == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [r["value_date"] for r in rows[:-1]] == [day]


def test_a_ledger_opened_without_a_time_zone_books_no_instruction(ledger_url):
    out = run([purchase("e1", 1, "1000.00")])
    with Ledger.open(ledger_url) as ledger:
        with pytest.raises(LedgerError, match="time zone"):
            ledger.record(out.decisions, out.instructions, out.rejections)
        ledger.record(out.decisions[:0], [], out.rejections)  # rejections and reading need none
        assert ledger.counts() == {"decisions": 0, "instructions": 0, "rejections": 0}
