"""subsidy replay: the --json shape exactly, caps hold, rejections counted, ledger idempotent."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rules.engine import Engine
from rules.intake import Rejected, intake
from rules.money import parse_amount
from rules.policy import load_policy
from sinks.ledger import Ledger
from sinks.reconcile import expected_from_events
from subsidy.cli import main
from subsidy.generate import generate_file
from subsidy.replay import replay

MONEY = re.compile(r"^-?(0|[1-9][0-9]*)\.[0-9]{2}$")
SUBSIDY = Path(sys.executable).parent / "subsidy"


def _replay_json(capsys, *args) -> tuple[dict, str]:
    code = main(["replay", *args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.endswith("\n") and out.count("\n") == 1, "stdout is exactly one JSON line"
    return json.loads(out), err


def _check_shape(result: dict, events: int, rejected: int) -> None:
    assert list(result) == ["events", "rejected", "granted"]
    assert result["events"] == events and result["rejected"] == rejected
    policy = load_policy()
    for clause, years in result["granted"].items():
        assert clause in policy.clauses
        for year, amount in years.items():
            assert re.fullmatch(r"\d{4}", year) and MONEY.match(amount), (clause, year, amount)
            assert parse_amount(amount) >= 0


def test_replay_json_shape_caps_and_rejections(small_year, tmp_path, capsys):
    path, events = small_year
    result, err = _replay_json(capsys, str(path), "--ledger", f"sqlite:///{tmp_path}/l.sqlite")
    assert err == ""  # no progress bar when stderr is not a terminal
    invalid = sum(e.invalid is not None for e in events)
    _check_shape(result, len(events), invalid)
    granted = result["granted"]
    assert set(granted) == set(load_policy().clauses), "a small year still triggers every clause"
    assert parse_amount(granted["compute-voucher"]["2026"]) <= 100_000_000_00
    assert parse_amount(granted["benchmark-scenario"]["2026"]) <= 20 * 1_000_000_00
    assert parse_amount(granted["green-datacenter"]["2026"]) == 4 * 1_000_000_00  # 4 data centres, one announced twice


def test_human_summary(small_year, tmp_path, capsys):
    path, _ = small_year
    assert main(["replay", str(path), "--ledger", f"sqlite:///{tmp_path}/h.sqlite"]) == 0
    out = capsys.readouterr().out
    for word in ("events", "rejected", "invalid-field", "malformed-json", "unknown-award", "compute-voucher", "instructions", "totals cross-checked", "h.sqlite"):
        assert word in out


def test_installed_script_gives_the_same_json(small_year, tmp_path, capsys):
    path, events = small_year
    url = f"sqlite:///{tmp_path}/s.sqlite"
    proc = subprocess.run([str(SUBSIDY), "replay", str(path), "--ledger", url, "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1
    from_script = json.loads(proc.stdout)
    _check_shape(from_script, len(events), sum(e.invalid is not None for e in events))
    in_process, _ = _replay_json(capsys, str(path), "--ledger", f"sqlite:///{tmp_path}/t.sqlite")
    assert from_script == in_process


def test_replay_twice_into_one_ledger_does_not_double(small_year, tmp_path, capsys):
    path, _ = small_year
    url = f"sqlite:///{tmp_path}/twice.sqlite"
    first, _ = _replay_json(capsys, str(path), "--ledger", url)
    second, err = _replay_json(capsys, str(path), "--ledger", url)
    assert first == second and "warning" not in err
    ledger = Ledger.open(url)
    try:
        totals = ledger.granted_totals()
        counts = ledger.counts()
    finally:
        ledger.close()
    as_json = {clause: {str(y): f"{fen // 100}.{fen % 100:02d}" for y, fen in years.items()} for clause, years in totals.items()}
    assert as_json == first["granted"]
    assert counts["rejections"] == first["rejected"]


def test_default_ledger_from_environment(small_year, tmp_path, monkeypatch, capsys):
    path, _ = small_year
    url = f"sqlite:///{tmp_path}/env.sqlite"
    monkeypatch.setenv("SUBSIDY_LEDGER_URL", url)
    result, _ = _replay_json(capsys, str(path))
    assert (tmp_path / "env.sqlite").exists()
    assert result["events"] > 0


def test_big_year_reaches_the_compute_budget_and_never_crosses_it(tmp_path):
    """The default year (no ledger: the engine alone) spends the 100M programme budget, not a fen more."""
    path = tmp_path / "year.jsonl"
    generate_file(path, 2026, seed=0)
    summary = replay(path, load_policy(), None)
    assert 58_000 <= summary.events <= 62_000
    compute = summary.granted["compute-voucher"]["2026"]
    assert 95_000_000_00 <= compute <= 100_000_000_00
    assert summary.granted["model-usage"]["2026"] > 0
    assert summary.duplicates >= 3
    assert summary.outcomes["clawed-back"] > 0 and summary.outcomes["partly-granted"] > 0


@pytest.mark.parametrize("lines, code", [
    ('{"topic": "compute-purchases", "raw": "{\\"event_id\\": "}\n', "malformed-json"),
    ("this is not an envelope\n", "malformed-line"),
    ('{"topic": "nope", "value": {}}\n', "unknown-topic"),
])
def test_odd_lines_become_rejections_not_crashes(tmp_path, lines, code):
    path = tmp_path / "odd.jsonl"
    # a blank line is not an event; the last line is an envelope (rejected too): an events file
    # in which not one line is an envelope is refused as a whole (tests/cli/test_errors.py)
    path.write_text(lines + "\n" + '{"topic": "nope", "value": {}}\n', encoding="utf-8")

    class Sink:
        def __init__(self):
            self.rejections = []

        def record(self, decisions, instructions, rejections, listings=()):
            self.rejections += rejections

    sink = Sink()
    summary = replay(path, load_policy(), sink)
    assert summary.events == 2 and summary.rejected == 2 and summary.rejected_by_code[code] >= 1
    record, _ = sink.rejections
    assert record["code"] == code and record["offset"] == 1 and record["partition"] is None


class _Recorder:
    def __init__(self):
        self.decisions, self.instructions = [], []

    def record(self, decisions, instructions, rejections, listings=()):
        self.decisions += decisions
        self.instructions += instructions


def test_the_order_of_the_lines_does_not_change_who_is_paid(small_year, tmp_path):
    """Claims are decided by occurred_at, source, event_id, wherever they are in the file: a
    shuffled file pays the same instructions, and ledger reconcile --against expects them too."""
    path, _ = small_year
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    random.Random(25).shuffle(lines)
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("".join(lines), encoding="utf-8")
    policy = load_policy()
    in_order, out_of_order = _Recorder(), _Recorder()
    assert replay(path, policy, in_order).to_json() == replay(shuffled, policy, out_of_order).to_json()
    assert in_order.instructions == out_of_order.instructions and in_order.decisions == out_of_order.decisions
    assert expected_from_events(shuffled.read_text(encoding="utf-8").splitlines()) == [i.to_wire() for i in in_order.instructions]
    # in file order the shuffled year would have paid others: the order matters here
    engine = Engine(policy, {})
    file_order = []
    for line in lines:
        envelope = json.loads(line)
        if "value" in envelope:
            try:
                claims = intake(envelope["topic"], json.dumps(envelope["value"], ensure_ascii=False).encode(), policy)
            except Rejected:
                continue
            for claim in claims:
                file_order += engine.decide(claim).instructions
    assert sorted(i.instruction_id for i in file_order) != sorted(i.instruction_id for i in in_order.instructions)
