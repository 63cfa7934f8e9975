"""Build decisions and instructions by running the real pure core on synthetic claims."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

from parties import enterprise
from rules.engine import Engine
from rules.intake import Rejected, intake
from rules.policy import Policy, load_policy
from rules.records import Decision, Instruction


@lru_cache(maxsize=1)
def policy():
    return load_policy()


TIMEZONE = policy().timezone  # the ledger books value dates in the policy's time zone


def purchase(event_id: str, buyer: int, amount: str, *, provider: int = 9_000_000, when: str = "2026-03-10T10:00:00+08:00", refund_of: str | None = None) -> tuple[str, dict]:
    value = {
        "event_id": event_id,
        "source": "scc-billing",
        "occurred_at": when,
        "beneficiary": enterprise(buyer, name=f"买方{buyer}"),
        "provider": enterprise(provider, name="超算中心"),
        "invoice_no": f"INV-{event_id}",
        "amount": amount,
    }
    if refund_of:
        value["refund_of"] = refund_of
    return "compute-purchases", value


@dataclass
class Run:
    decisions: list[Decision] = field(default_factory=list)
    instructions: list[Instruction] = field(default_factory=list)
    rejections: list[dict] = field(default_factory=list)


def run(messages: list[tuple[str, dict]], state: dict | None = None, under: Policy | None = None) -> Run:
    """``under``: the policy to decide under (default the shipped one)."""
    under = under or policy()
    engine = Engine(under, {} if state is None else state)
    out = Run()
    for offset, (topic, value) in enumerate(messages):
        raw = json.dumps(value).encode()
        try:
            claims = intake(topic, raw, under)
        except Rejected as rejected:
            out.rejections.append({"rejection_id": f"{topic}:0:{offset}", "topic": topic, "partition": 0, "offset": offset, "code": rejected.code, "reason": rejected.reason, "original_text": raw.decode(), "rejected_at": "2026-01-01T00:00:00+00:00"})
            continue
        for claim in claims:
            outcome = engine.decide(claim)
            assert outcome.rejection is None, outcome.rejection
            if not outcome.duplicate:
                out.decisions.extend(outcome.decisions)
                out.instructions.extend(outcome.instructions)
    return out
