"""What a file of events must become (the pure replay) and whether the ledger holds it.

Completion is read from the ledger, never from broker offsets (the local broker's end
offsets are wrong for batching producers, see streams/tansu/README.md): a run is complete
when the ledger holds every decision the replay makes and one rejection per rejected
message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

from rules.money import format_fen
from rules.policy import Policy, load_policy
from rules.records import Decision, Instruction
from subsidy.replay import ReplaySummary, normalise_totals, replay


class _Collect:
    def __init__(self) -> None:
        self.decision_ids: set[str] = set()
        self.instructions: dict[str, tuple[str, str]] = {}
        self.rejections = 0

    def record(self, decisions: list[Decision], instructions: list[Instruction], rejections: list[dict], listings=()) -> None:
        self.decision_ids.update(d.decision_id for d in decisions)
        self.instructions.update(paid_by_id(i.to_wire() for i in instructions))
        self.rejections += len(rejections)

    def import_payee_accounts(self, messages: list[dict]) -> tuple[int, int]:
        return len(messages), 0  # accounts decide nothing: what is expected is decisions and rejections


@dataclass
class Expected:
    summary: ReplaySummary
    decision_ids: set[str]
    instructions: dict[str, tuple[str, str]]  # instruction id -> (payee, amount)
    rejections: int
    totals: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def inputs(self) -> int:
        return self.summary.events

    @property
    def instruction_ids(self) -> set[str]:
        return set(self.instructions)


def paid_by_id(instructions) -> dict[str, tuple[str, str]]:
    """instruction id -> (payee, amount): what must be the same, instruction by instruction, in every run."""
    return {i["instruction_id"]: (i["payee"]["id"], i["amount"]) for i in instructions}


def instruction_differences(expected: Expected, stored: list[dict]) -> list[str]:
    """Each instruction the ledger holds otherwise than the replay (at most 10 named), or none."""
    actual = paid_by_id(stored)
    differing = sorted(i for i in expected.instructions.keys() | actual.keys() if expected.instructions.get(i) != actual.get(i))
    return [f"{i}: replay {expected.instructions.get(i)}, ledger {actual.get(i)}" for i in differing[:10]] + (
        [f"... {len(differing) - 10} more"] if len(differing) > 10 else [])


def expected_from_file(path: str, policy: Policy | None = None) -> Expected:
    collect = _Collect()
    summary = replay(path, policy or load_policy(), collect)
    totals = {c: {y: f for y, f in years.items() if f} for c, years in summary.granted.items()}
    return Expected(summary, collect.decision_ids, collect.instructions, collect.rejections, {c: y for c, y in totals.items() if y})


def ledger_totals(ledger) -> dict[str, dict[str, int]]:
    totals = normalise_totals(ledger.granted_totals())
    return {c: {y: f for y, f in years.items() if f} for c, years in totals.items() if any(years.values())}


def accounted(ledger, expected: Expected) -> tuple[int, int]:
    """(inputs accounted for, inputs expected), from the ledger's counts."""
    counts = ledger.counts()
    done = min(counts["decisions"], len(expected.decision_ids)) + min(counts["rejections"], expected.rejections)
    return done, len(expected.decision_ids) + expected.rejections


def wait_until_accounted(
    ledger,
    expected: Expected,
    *,
    timeout: float = 300.0,
    settle: float = 1.0,
    on_progress: Callable[[int, int], None] | None = None,
    check: Callable[[], None] | None = None,
) -> bool:
    """Poll the ledger until it accounts for every input (then wait ``settle`` s more)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, total = accounted(ledger, expected)
        if on_progress:
            on_progress(done, total)
        if done >= total:
            time.sleep(settle)
            return True
        if check:
            check()
        time.sleep(0.5)
    return False


def compare_totals(expected: dict[str, dict[str, int]], actual: dict[str, dict[str, int]]) -> list[str]:
    problems = []
    for clause in sorted(set(expected) | set(actual)):
        for year in sorted(set(expected.get(clause, {})) | set(actual.get(clause, {}))):
            want, have = expected.get(clause, {}).get(year, 0), actual.get(clause, {}).get(year, 0)
            if want != have:
                problems.append(f"{clause} {year}: ledger {format_fen(have)}, replay {format_fen(want)}")
    return problems


def totals_table(expected: dict[str, dict[str, int]], actual: dict[str, dict[str, int]]) -> str:
    rows = [(c, y) for c in sorted(set(expected) | set(actual)) for y in sorted(set(expected.get(c, {})) | set(actual.get(c, {})))]
    width = max([len(c) for c, _ in rows] + [6])
    lines = [f"  {'clause':<{width}}  year  {'pipeline (ledger)':>18}  {'replay':>18}"]
    for c, y in rows:
        have, want = actual.get(c, {}).get(y, 0), expected.get(c, {}).get(y, 0)
        mark = "" if have == want else "  <-- differs"
        lines.append(f"  {c:<{width}}  {y}  {format_fen(have):>18}  {format_fen(want):>18}{mark}")
    total_have = sum(f for ys in actual.values() for f in ys.values())
    total_want = sum(f for ys in expected.values() for f in ys.values())
    lines.append(f"  {'total':<{width}}        {format_fen(total_have):>18}  {format_fen(total_want):>18}")
    return "\n".join(lines)


def cap_problems(ledger) -> list[str]:
    return [f"cap {scope}: used {u['used']} > limit {u['limit']}" for scope, u in ledger.cap_usage().items() if u["used"] > u["limit"]]


def state_differs_from_changelog(p, bootstrap: str) -> list[str]:
    """Problems, if any, with the RocksDB state of a LocalPipeline ``p``'s workers (stopped):
    each must equal the changelog replayed up to the offset it holds, or a worker restarted on
    it would know claims the changelog lacks (see streams/state.py)."""
    from faust.types import TP
    from kafka import KafkaConsumer, TopicPartition

    from streams.app import build_app
    from streams.config import StreamConfig
    from streams.own_records import Unreadable, read_changelog_record
    from streams.topics import STATE_TABLE, changelog_topic

    topic = changelog_topic(p.app_id)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    consumer.assign([TopicPartition(topic, partition) for partition in range(p.partitions)])
    consumer.seek_to_beginning()
    records: dict[int, list[tuple[int, dict]]] = {partition: [] for partition in range(p.partitions)}
    for message in consumer:
        try:
            records[message.partition].append((message.offset, read_changelog_record(message.value)))
        except Unreadable:
            continue  # skipped by restores too (streams/state.py)
    consumer.close()
    problems = []
    for datadir in sorted(p.workdir.glob("worker-*-data")):
        table = build_app(StreamConfig(datadir=str(datadir), app_id=p.app_id, state_store="rocksdb")).tables[STATE_TABLE]
        for partition in range(p.partitions):
            held = table.data.persisted_offset(TP(topic, partition))
            expected: dict = {}
            for offset, writes in records[partition]:
                if held is not None and offset <= held:
                    expected.update(writes)
            db = table.data._db_for_partition(partition)
            actual = {key.decode(): json.loads(value) for key, value in db.items() if key != table.data.offset_key}
            if actual != expected:
                extra = sorted(set(actual) - set(expected))[:3]
                changed = sorted(k for k in set(actual) & set(expected) if actual[k] != expected[k])[:3]
                problems.append(f"{datadir.name} partition {partition} (changelog offset {held}): "
                                f"{len(set(actual) - set(expected))} keys the changelog lacks {extra}, "
                                f"{len(set(expected) - set(actual))} missing, other values for {changed}")
        for db in table.data._dbs.values():
            db.close()
    return problems
