"""``subsidy whatif``: a tiny policy change with a known difference, its JSON shape, its errors."""

from __future__ import annotations

import json
import os

import pytest
from whatif_events import RATE_50, RATE_60, THREE_PURCHASES, events_line, policy_file

from rules.policy import load_policy
from rules.whatif import simulate
from subsidy.cli import main
from subsidy.replay import parse_envelope, replay


@pytest.fixture()
def three_purchases(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(events_line(topic, raw) + "\n" for topic, raw in THREE_PURCHASES), encoding="utf-8")
    return path


def test_rate_060_to_050_in_json(three_purchases, tmp_path, capsys):
    new = policy_file(tmp_path, "new.yaml", (RATE_60, RATE_50))
    assert main(["whatif", str(three_purchases), "--policy", str(new), "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == {
        "current": {"granted": {"compute-voucher": {"2026": "1800.00"}}},
        "new": {"granted": {"compute-voucher": {"2026": "1500.00"}}},
        "diff": {"compute-voucher": {"2026": "-300.00"}},
        "payees_affected": 3,
        "exhaustion": {"current": {"compute-voucher": {"2026": None}}, "new": {"compute-voucher": {"2026": None}}},
    }


def test_programmes_given_as_a_list_of_files_run_together(three_purchases, tmp_path, capsys):
    """As every other command takes them (city.yaml:district.yaml): both sides with the district's programme."""
    from rules.policy import SHIPPED_PROGRAMMES

    district = SHIPPED_PROGRAMMES.split(os.pathsep)[1]
    new = policy_file(tmp_path, "new.yaml", (RATE_60, RATE_50))
    current = SHIPPED_PROGRAMMES.split(os.pathsep)[0]
    argv = ["whatif", str(three_purchases), "--policy", f"{new}{os.pathsep}{district}", "--against", f"{current}{os.pathsep}{district}", "--json"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["diff"] == {"compute-voucher": {"2026": "-300.00"}}


def test_text_lists_totals_budgets_and_payees_and_saves_for_the_console(three_purchases, tmp_path, capsys):
    new = policy_file(tmp_path, "new.yaml", (RATE_60, RATE_50))
    saved = tmp_path / "whatif.json"
    assert main(["whatif", str(three_purchases), "--policy", str(new), "--top", "2", "--save", str(saved)]) == 0
    out, _ = capsys.readouterr()
    assert ["compute-voucher", "2026", "1800.00", "1500.00", "-300.00"] in [line.split() for line in out.splitlines()]
    assert "payees affected 3, the 2 largest changes (CNY):" in out
    assert out.count(" -> ") == 2
    document = json.loads(saved.read_text(encoding="utf-8"))
    assert document["diff"] == {"compute-voucher": {"2026": "-300.00"}}
    assert document["policies"]["new"]["file"] == str(new)


def test_whatif_pays_what_replay_pays(small_year):
    """The current side of a what-if is a replay without a ledger: the same totals to the fen."""
    path, _ = small_year
    events = []
    for line in path.read_bytes().splitlines():
        try:
            topic, raw, _ = parse_envelope(line)
        except Exception:  # noqa: BLE001 - a malformed line: replay rejects it, whatif skips it
            continue
        if topic != "payee-exclusions":
            events.append((topic, raw))
    assert simulate(events, [load_policy()]).granted == {"chengdu-ai-2025": replay(path, load_policy(), None).granted}


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("subsidy: error: ") and err.count("\n") == 1, err
    return err


def test_a_bad_policy_file_is_named_with_its_line(three_purchases, tmp_path, capsys):
    bad = policy_file(tmp_path, "bad.yaml", (RATE_60, 'value: "sixty", basis: stated, reference: "x"'))
    line = 1 + next(n for n, text in enumerate(bad.read_text(encoding="utf-8").splitlines()) if '"sixty"' in text)
    assert f"{bad}:{line}:" in _one_line_error(capsys, ["whatif", str(three_purchases), "--policy", str(bad)])
    good = policy_file(tmp_path, "new.yaml", (RATE_60, RATE_50))
    assert "/no/such.yaml" in _one_line_error(capsys, ["whatif", str(three_purchases), "--policy", str(good), "--against", "/no/such.yaml"])


def test_a_bad_events_file_is_one_line(tmp_path, capsys):
    new = policy_file(tmp_path, "new.yaml", (RATE_60, RATE_50))
    assert "does not exist" in _one_line_error(capsys, ["whatif", str(tmp_path / "none.jsonl"), "--policy", str(new)])
    not_events = tmp_path / "notes.txt"
    not_events.write_text("hello\nworld\n")
    assert "is it the events file?" in _one_line_error(capsys, ["whatif", str(not_events), "--policy", str(new)])
