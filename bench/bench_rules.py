"""Rules core: claims decided per second on one core, against a bare allocator in the same run.

The claims come from a generated year (``subsidy.generate``) put through ``rules.intake`` once,
outside the timing. Then, over the same claims:

* baseline: the irreducible arithmetic of the compute voucher and model clauses in a dict
  (base × rate floored, two caps looked up and charged), with no decision, computation or
  idempotency record: what a hand-written loop with no audit trail would cost;
* records only: the decision, instruction, computation (two cap steps) and state records of a
  paid claim, with the engine's keys and nesting, values copied from the claim or constant, and
  its two SHA-1 ids; no state read, no cap arithmetic, no amount formatting: the floor of the
  audit trail alone;
* engine: ``rules.engine.Engine.decide`` with a fresh dict state, producing the full decision,
  instruction and state records.

Also intake (``rules.intake.intake``: bytes to validated claims, or a rejection) in messages/s,
against parsing the same bytes as JSON and nothing else.

The figures are engine/baseline (the price of the audit trail and guarantees), engine/records
(the price of the logic over the records' floor) and the absolute claims/s against the issue's
goal of 200,000/s. Run: ``python bench/bench_rules.py [--events N] [--json]``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Timer, emit, environment, rate  # noqa: E402
from rules.engine import Engine  # noqa: E402
from rules.intake import Rejected, intake  # noqa: E402
from rules.policy import load_policy  # noqa: E402
from subsidy.runtime import tune_gc  # noqa: E402

GOAL_CLAIMS_PER_SECOND = 200_000


def generated_messages(events: int, seed: int) -> list[tuple[str, bytes]]:
    """(topic, bytes) of a generated year's well-formed messages, as upstream would publish them."""
    from subsidy.generate import generate_lines

    messages = []
    for line in generate_lines(2026, seed, events=events, policy=load_policy()):
        envelope = json.loads(line)
        if "value" in envelope:
            messages.append((envelope["topic"], json.dumps(envelope["value"], ensure_ascii=False).encode()))
    return messages


def claims_of(messages: list[tuple[str, bytes]], policy) -> list:
    claims = []
    for topic, raw in messages:
        try:
            claims += intake(topic, raw, policy)
        except Rejected:
            pass
    return claims


def parse_only(messages: list[tuple[str, bytes]]) -> int:
    """The intake baseline: each message's bytes decoded and parsed as JSON, nothing checked."""
    return sum(len(json.loads(raw)) for _, raw in messages)


def bare_allocator(claims: list, policy) -> int:
    """base × rate, floored, under one per-beneficiary and one programme cap; nothing recorded."""
    rates = {}
    limits = {}
    for clause in policy.clauses.values():
        if clause.entitlement.kind == "share":
            rates[clause.id] = clause.entitlement.rate.values[-1].value
        limits[clause.id] = [c.amount.values[-1].value if c.amount else 1 for c in clause.caps]
    used: dict = {}
    granted_total = 0
    for claim in claims:
        rate_ = rates.get(claim.clause_id)
        grant = rate_.apply_floor(claim.base or 0) if rate_ else 0
        for index, limit in enumerate(limits[claim.clause_id]):
            key = (claim.clause_id, index, claim.fiscal_year, claim.beneficiary["id"] if index == 0 else "")
            grant = min(grant, limit - used.get(key, 0))
        if grant > 0:
            for index in range(len(limits[claim.clause_id])):
                key = (claim.clause_id, index, claim.fiscal_year, claim.beneficiary["id"] if index == 0 else "")
                used[key] = used.get(key, 0) + grant
            granted_total += grant
    return granted_total


def records_only(claims: list) -> int:
    """The engine's records of a paid claim with two cap steps, built with no logic (see the module doc)."""
    built = 0
    for claim in claims:
        name = f"{claim.source}\x1f{claim.event_id}".encode()
        decision_id, instruction_id = hashlib.sha1(b"decision" + name).hexdigest(), hashlib.sha1(b"instruction" + name).hexdigest()
        steps = [{"cap": "per-buyer", "scope": claim.clause_id, "kind": "amount", "limit": "5000000.00", "used_before": "0.00", "room_before": "5000000.00", "granted_after": "1.00"},
                 {"cap": "programme", "scope": claim.clause_id, "kind": "amount", "limit": "100000000.00", "used_before": "0.00", "room_before": "100000000.00", "granted_after": "1.00"}]
        computation = {"base": "1.00", "refunded_before_decision": None, "rate": "0.60", "grade": claim.grade, "raw_entitlement": "1.00", "caps": steps, "granted": "1.00"}
        decision = {"decision_id": decision_id, "event_id": claim.event_id, "source": claim.source, "topic": claim.topic, "occurred_at": claim.occurred_at,
                    "policy_id": "p", "policy_version": "v", "clause_id": claim.clause_id, "fiscal_year": claim.fiscal_year, "outcome": "granted",
                    "payee": claim.payee, "beneficiary": claim.beneficiary, "granted": "1.00", "declined": "0.00", "declined_by": None, "reason": "",
                    "corrects": claim.corrects, "computation": computation, "instruction_id": instruction_id}
        instruction = {"instruction_id": instruction_id, "kind": "payment", "payee": claim.payee, "beneficiary": claim.beneficiary, "amount": "1.00",
                       "currency": "CNY", "policy_id": "p", "policy_version": "v", "clause_id": claim.clause_id, "fiscal_year": claim.fiscal_year,
                       "event_ids": [claim.event_id], "source": claim.source, "occurred_at": claim.occurred_at, "corrects": None, "computation": computation}
        record = {"fingerprint": claim.fingerprint, "decision": decision, "instructions": [instruction], "base": claim.base, "refunded": 0, "rate": [60, 100],
                  "granted": 1, "charged": [["a", 1, None], ["b", 1, None]], "fiscal_year": claim.fiscal_year, "payee": claim.payee, "instruction_id": instruction_id}
        built += len(record)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000, help="generated events (default: a year, 60,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs of each side")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--default-gc", action="store_true", help="keep CPython's default GC thresholds (for comparison)")
    args = parser.parse_args(argv)

    policy = load_policy()
    messages = generated_messages(args.events, args.seed)
    claims = claims_of(messages, policy)
    parse_best = intake_best = baseline_best = records_best = engine_best = float("inf")
    if not args.default_gc:
        tune_gc()  # as `subsidy replay` and the stream workers run (subsidy/runtime.py)
    gc.collect()
    for _ in range(args.repeat):
        with Timer() as t:
            parse_only(messages)
        parse_best = min(parse_best, t.seconds)
        with Timer() as t:
            claims_of(messages, policy)
        intake_best = min(intake_best, t.seconds)
        with Timer() as t:
            bare_allocator(claims, policy)
        baseline_best = min(baseline_best, t.seconds)
        with Timer() as t:
            records_only(claims)
        records_best = min(records_best, t.seconds)
        engine = Engine(policy, {})
        with Timer() as t:
            for claim in claims:
                engine.decide(claim)
        engine_best = min(engine_best, t.seconds)
    baseline_rate, records_rate, engine_rate = rate(len(claims), baseline_best), rate(len(claims), records_best), rate(len(claims), engine_best)
    parse_rate, intake_rate = rate(len(messages), parse_best), rate(len(messages), intake_best)
    result = {
        "benchmark": "rules-core",
        "messages": len(messages),
        "json_parse_messages_per_s": round(parse_rate),
        "intake_messages_per_s": round(intake_rate),
        "ratio_intake_to_json_parse": round(intake_rate / parse_rate, 3),
        "claims": len(claims),
        "baseline_claims_per_s": round(baseline_rate),
        "records_only_claims_per_s": round(records_rate),
        "engine_claims_per_s": round(engine_rate),
        "ratio_engine_to_baseline": round(engine_rate / baseline_rate, 3),
        "ratio_engine_to_records_only": round(engine_rate / records_rate, 3),
        "goal_claims_per_s": GOAL_CLAIMS_PER_SECOND,
        "goal_met": engine_rate >= GOAL_CLAIMS_PER_SECOND,
        "gc_thresholds": list(gc.get_threshold()),
        "environment": environment(),
    }
    emit(result, args.json, [
        f"messages: {len(messages):,}; JSON parse only (baseline): {parse_rate:,.0f}/s; intake: {intake_rate:,.0f}/s = {intake_rate / parse_rate:.3f} × baseline",
        f"claims: {len(claims):,} (best of {args.repeat})",
        f"bare allocator (baseline): {baseline_rate:,.0f} claims/s",
        f"records only (floor):      {records_rate:,.0f} claims/s",
        f"engine:                    {engine_rate:,.0f} claims/s  = {engine_rate / baseline_rate:.3f} × baseline, {engine_rate / records_rate:.3f} × records only",
        f"goal {GOAL_CLAIMS_PER_SECOND:,}/s: {'met' if engine_rate >= GOAL_CLAIMS_PER_SECOND else 'NOT met'}",
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
