"""Events and policy files of the what-if tests (tests/unit/test_whatif.py, tests/cli/test_whatif.py):
three compute purchases of 1,000.00 on 1-3 March 2026 from three providers, and the shipped
policy file with its text replaced (the voucher rate, the voucher budget)."""

from __future__ import annotations

import json

from parties import enterprise
from rules.policy import DEFAULT_POLICY_PATH

SHIPPED = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
RATE_60 = 'value: "0.60", basis: stated, reference: "最高可抵扣不超过60%的算力购买费用"'
RATE_50 = 'value: "0.50", basis: assumed, reference: "what-if: 50%"'
BUDGET = 'value: "100000000.00", basis: stated, reference: "每年发放不超过1亿元算力券"'


def policy_file(tmp_path, name: str, *replacements: tuple[str, str]):
    text = SHIPPED
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def purchase(n: int, day: str, amount: str, provider: int) -> tuple[str, bytes]:
    value = {"event_id": f"P-{n}", "source": "scc-billing", "occurred_at": f"2026-03-{day}T10:00:00+08:00", "beneficiary": enterprise(100 + n),
             "provider": enterprise(provider, kind=1), "invoice_no": f"INV{n}", "amount": amount}
    return "compute-purchases", json.dumps(value, ensure_ascii=False).encode()


def events_line(topic: str, raw: bytes) -> str:
    return json.dumps({"topic": topic, "value": json.loads(raw)}, ensure_ascii=False)


THREE_PURCHASES = [purchase(1, "01", "1000.00", 1), purchase(2, "02", "1000.00", 2), purchase(3, "03", "1000.00", 3)]
