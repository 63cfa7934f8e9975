"""The ledger's count cap agrees with a `distinct` count cap of the engine.

每年遴选不超过20个标杆场景: a scenario announced twice (a top-up) is one of the 20, so the
ledger must let the 20th distinct scenario through although it is the 21st payment.
"""

from __future__ import annotations

from parties import enterprise
from sinks.ledger import Ledger
from tests.ledger.factory import TIMEZONE, run


def scenario(event_id: str, n: int, subject: str) -> tuple[str, dict]:
    return "award-announcements", {
        "event_id": event_id,
        "source": "gov-review-system",
        "occurred_at": "2026-06-01T10:00:00+08:00",
        "beneficiary": enterprise(n),
        "award": "benchmark-scenario",
        "approval_ref": f"成经信〔2026〕{n}号",
        "subject": subject,
        "base_amount": "1000000.00",
    }


def test_a_scenario_paid_twice_takes_one_place_of_the_twenty(ledger_url):
    messages = [scenario("s01", 1, "场景01"), scenario("s01-top-up", 1, "场景01")]
    messages += [scenario(f"s{n:02d}", n, f"场景{n:02d}") for n in range(2, 22)]
    out = run(messages)
    assert len(out.instructions) == 21  # 20 distinct scenarios, one of them paid twice; the 21st scenario declined
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, out.rejections)
        usage = ledger.cap_usage()
    count_scope = next(scope for scope in usage if "scenarios-year" in scope)
    assert usage[count_scope]["used"] == 20
