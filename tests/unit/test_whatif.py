"""What-if (rules/whatif.py): the same events decided under two policies, compared."""

from __future__ import annotations

import pytest
from whatif_events import BUDGET, RATE_50, RATE_60, THREE_PURCHASES, policy_file

from rules.policy import load_policy
from rules.whatif import compare, simulate


def test_a_lower_rate_pays_less_to_every_payee(tmp_path):
    current, new = load_policy(), load_policy(policy_file(tmp_path, "new.yaml", (RATE_60, RATE_50)))
    comparison = compare(simulate(THREE_PURCHASES, [current]), simulate(THREE_PURCHASES, [new]))
    document = comparison.to_json()
    assert document["current"]["granted"] == {"compute-voucher": {"2026": "1800.00"}}
    assert document["new"]["granted"] == {"compute-voucher": {"2026": "1500.00"}}
    assert document["diff"] == {"compute-voucher": {"2026": "-300.00"}}
    assert document["payees_affected"] == 3
    assert [change.change for change in comparison.changes] == [-10000] * 3
    assert document["exhaustion"] == {"current": {"compute-voucher": {"2026": None}}, "new": {"compute-voucher": {"2026": None}}}


def test_budget_exhaustion_day_and_payees_when_totals_agree(tmp_path):
    """Budget 1,100.00: at 60% it is gone with the second purchase (600 + 500), at 50% with the
    third (500 + 500 + 100). The total is the same, the payees and the day are not."""
    small = (BUDGET, BUDGET.replace("100000000.00", "1100.00"))
    current = load_policy(policy_file(tmp_path, "current.yaml", small))
    new = load_policy(policy_file(tmp_path, "new.yaml", small, (RATE_60, RATE_50)))
    comparison = compare(simulate(THREE_PURCHASES, [current]), simulate(THREE_PURCHASES, [new]))
    document = comparison.to_json()
    assert document["diff"] == {"compute-voucher": {"2026": "0.00"}}
    assert document["exhaustion"] == {"current": {"compute-voucher": {"2026": "2026-03-02"}}, "new": {"compute-voucher": {"2026": "2026-03-03"}}}
    assert [(change.current, change.new) for change in comparison.changes] == [(60000, 50000), (0, 10000)]
    assert document["payees_affected"] == 2


def test_events_in_any_file_order_are_decided_in_event_time_order(tmp_path):
    small = (BUDGET, BUDGET.replace("100000000.00", "1100.00"))
    policy = load_policy(policy_file(tmp_path, "current.yaml", small))
    forwards, backwards = simulate(THREE_PURCHASES, [policy]), simulate(THREE_PURCHASES[::-1], [policy])
    assert forwards.by_payee == backwards.by_payee and forwards.exhausted == backwards.exhausted


def test_several_programmes_key_clauses_by_programme(tmp_path):
    other = load_policy(policy_file(tmp_path, "other.yaml", ("policy_id: chengdu-ai-2025", "policy_id: other-programme")))
    document = compare(simulate(THREE_PURCHASES, [load_policy()]), simulate(THREE_PURCHASES, [load_policy(), other])).to_json()
    assert document["new"]["granted"] == {"chengdu-ai-2025/compute-voucher": {"2026": "1800.00"}, "other-programme/compute-voucher": {"2026": "1800.00"}}
    assert document["diff"]["other-programme/compute-voucher"] == {"2026": "1800.00"}


@pytest.mark.parametrize("bad", [("compute-purchases", b"{not json"), ("no-such-topic", b"{}")])
def test_an_event_intake_refuses_is_counted_not_decided(bad):
    outcome = simulate([*THREE_PURCHASES, bad], [load_policy()])
    assert outcome.rejected == 1 and outcome.claims == 3
