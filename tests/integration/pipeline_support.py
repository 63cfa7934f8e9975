"""Helpers for the pipeline tests: a broker per test, a fresh PostgreSQL ledger, event files."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

from sinks.ledger import Ledger
from streams.tools.verify import cap_problems, compare_totals, instruction_differences, ledger_totals, totals_table


def docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def mutate(path: Path, out: Path, seed: int = 7) -> dict:
    """Duplicates, local reordering and bad messages mixed into a generated file."""
    rng = random.Random(seed)
    lines = [text for text in path.read_text(encoding="utf-8").splitlines() if text.strip()]
    # reorder: shuffle inside windows of 40 lines (refunds may now arrive before their purchase)
    shuffled: list[str] = []
    for start in range(0, len(lines), 40):
        window = lines[start : start + 40]
        rng.shuffle(window)
        shuffled.extend(window)
    # duplicates: 5 % of lines sent again a little later
    out_lines: list[str] = []
    pending: list[tuple[int, str]] = []
    for i, line in enumerate(shuffled):
        out_lines.append(line)
        if rng.random() < 0.05:
            pending.append((i + rng.randint(1, 200), line))
        for item in [p for p in pending if p[0] <= i]:
            out_lines.append(item[1])
            pending.remove(item)
    out_lines.extend(line for _, line in pending)
    # bad messages on every input topic
    bad = 0
    topics = ["compute-purchases", "model-invoices", "investment-closings", "award-announcements"]
    for n in range(40):
        topic = topics[n % 4]
        kind = n % 5
        if kind == 0:
            raw = '{"event_id": "broken'
        elif kind == 1:
            raw = json.dumps({"event_id": f"bad-{n}", "source": "nobody"})
        elif kind == 2:
            raw = "[1, 2, 3]"
        elif kind == 3:
            raw = '{"event_id": "x", "event_id": "y"}'
        else:
            raw = "not json at all \u00e9"
        out_lines.insert(rng.randrange(len(out_lines)), json.dumps({"topic": topic, "raw": raw}, ensure_ascii=False))
        bad += 1
    out.write_text("\n".join(out_lines) + "\n", encoding="utf-8")
    return {"lines": len(out_lines), "bad": bad}


def wait_for_progress(ledger, expected, at_least: int, timeout: float = 120.0, check=None) -> int:
    from streams.tools.verify import accounted

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = accounted(ledger, expected)
        if done >= at_least:
            return done
        if check:
            check()
        time.sleep(0.2)
    raise AssertionError(f"the ledger did not reach {at_least} inputs within {timeout}s")


def alive_check(p):
    """A wait's check: restart a worker that stopped itself (streams/local.py::restart_halted);
    fail with the log tail of a worker that died otherwise and, when the ledger refused a
    record, every record of the topics that names the refused ids (streams/tools/trace.py), so that a
    rare failure leaves what is needed to explain it."""
    def check() -> None:
        for line in p.restart_halted():  # as the production restart policy does
            print(f"\n{line}")
        dead = p.dead_workers()
        if dead:
            tail = p.log_tail(dead[0])
            raise AssertionError(f"worker {dead[0].index} died ({dead[0].proc.returncode}):\n{tail}{refusal_trace(p, tail)}")

    return check


def refusal_trace(p, log_tail: str) -> str:
    from streams.tools.trace import trace

    refusal = next((line for line in reversed(log_tail.splitlines()) if "LEDGER REFUSED" in line), "")
    ids = set(re.findall(r"\b[0-9a-f]{32}\b", refusal))
    if not ids:
        return ""
    try:
        lines = trace(p.bootstrap, ids, p.app_id, progress=lambda text: None)
        with Ledger.open(p.ledger_url) as ledger, ledger.engine.connect() as conn:
            booked = conn.exec_driver_sql(
                "SELECT instruction_id, kind, journal_seq, recorded_at FROM ledger_instructions WHERE instruction_id IN ("
                + ", ".join(f"'{i}'" for i in sorted(ids)) + ")").all()
        lines.append("in the ledger: " + (", ".join(f"{r[1]} {r[0][:12]} (journal #{r[2]}, {r[3]})" for r in booked) or "none of them"))
        return "\n" + "\n".join(lines)
    except Exception as exc:  # noqa: BLE001 - the trace must not hide the failure it explains
        return f"\n(trace failed: {type(exc).__name__}: {exc})"


def assert_ledger_equals_replay(ledger, expected) -> None:
    """The same payments to the same payees as the replay, instruction by instruction, to the fen."""
    actual = ledger_totals(ledger)
    problems = compare_totals(expected.totals, actual)
    assert not problems, "ledger differs from the replay:\n" + totals_table(expected.totals, actual)
    differences = instruction_differences(expected, ledger.instructions())
    assert not differences, "the pipeline paid otherwise than the replay:\n" + "\n".join(differences)
    assert_sound(ledger, expected)


def assert_sound(ledger, expected) -> None:
    counts = ledger.counts()
    assert counts["decisions"] == len(expected.decision_ids), counts
    assert counts["rejections"] == expected.rejections, counts
    stored = ledger.instructions()
    ids = [i["instruction_id"] for i in stored]
    assert len(ids) == len(set(ids)), "an instruction id was booked twice"
    paid = [(i["clause_id"], i["source"], tuple(i["event_ids"])) for i in stored]
    assert len(paid) == len(set(paid)), "one event was paid twice under one clause"
    assert not cap_problems(ledger)
    assert not ledger.verify_chain()
