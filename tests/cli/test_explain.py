"""subsidy explain: every amount of a generated year, replayed into a SQLite ledger, is reproduced
from its record and the policy; a record changed in the ledger is not; mistakes take one line."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter

import pytest

from rules.explain import explain
from rules.money import format_fen, parse_amount
from rules.policy import load_policy
from sinks.ledger import Ledger
from subsidy.cli import main
from subsidy.explain import find_records, render


@pytest.fixture(scope="module")
def year_ledger(small_year, tmp_path_factory):
    """A SQLite ledger holding the replay of the small generated year."""
    path = tmp_path_factory.mktemp("explain") / "year.sqlite"
    assert main(["replay", str(small_year[0]), "--ledger", f"sqlite:///{path}", "--json"]) == 0
    return path


def _ids(path, query: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute(query)]


def test_every_instruction_and_decision_of_a_generated_year_is_reproduced(year_ledger):
    decisions = _ids(year_ledger, "SELECT decision_id FROM ledger_decisions")
    instructions = _ids(year_ledger, "SELECT instruction_id FROM ledger_instructions")
    policy = load_policy()
    outcomes: Counter[str] = Counter()
    where = str(year_ledger)
    # the command's own lookup, recomputation and text, with one open ledger (a process per id would take minutes)
    with Ledger.open(f"sqlite:///{year_ledger}") as ledger:
        for record_id in decisions + instructions:
            decision, instruction, original = find_records(ledger, record_id, where)
            explanation = explain(policy, decision=decision, instruction=instruction, original=original)
            assert explanation.reproduced, (record_id, explanation.differences)
            assert render(explanation, "policy.yaml")[-1].startswith("reproduced: ")
            outcomes[explanation.decision["outcome"] if explanation.decision else "none"] += 1
    assert outcomes["none"] == 0, "every instruction is explained with its decision"
    assert {"granted", "partly-granted", "declined", "clawed-back"} <= set(outcomes), outcomes
    assert sum(outcomes.values()) == len(decisions) + len(instructions) > 2000


def test_the_command_on_a_payment_a_clawback_and_a_declined_award(year_ledger, capsys):
    ledger = f"sqlite:///{year_ledger}"
    (payment,) = _ids(year_ledger, "SELECT instruction_id FROM ledger_instructions WHERE kind = 'payment' AND clause_id = 'compute-voucher' ORDER BY journal_seq LIMIT 1")
    uuid_form = f"{payment[:8]}-{payment[8:12]}-{payment[12:16]}-{payment[16:20]}-{payment[20:]}".upper()
    assert main(["explain", uuid_form, "--ledger", ledger]) == 0
    out = capsys.readouterr().out
    for words in ("clause      compute-voucher, article 1, 算力券", "每年发放不超过1亿元算力券", "chengdu-ai-2025 version 2025.08-r1",
                  "values in force on", "0.60  2025-08-28  stated", "100,000,000.00", "buyer-year", "programme-year", "× rate 0.60, rounded down to the fen",
                  "room before", "reproduced: "):
        assert words in out, (words, out)

    (clawback,) = _ids(year_ledger, "SELECT decision_id FROM ledger_decisions WHERE outcome = 'clawed-back' LIMIT 1")
    assert main(["explain", clawback[:8], "--ledger", ledger]) == 0, "a unique prefix of 8 digits"
    out = capsys.readouterr().out
    assert "the day of the payment it corrects" in out and "room given back:" in out and "net base" in out

    (declined,) = _ids(year_ledger, "SELECT decision_id FROM ledger_decisions WHERE outcome = 'declined' AND clause_id = 'benchmark-scenario' LIMIT 1")
    assert main(["explain", declined, "--ledger", ledger, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["decision_id"], out["instruction_id"], out["paid"], out["paid_by"], out["reproduced"]) == (declined, None, "0.00", "decision", True)
    assert [cap["kind"] for cap in out["working"]["caps"]][-1:] in (["count"], ["amount"])


def test_a_changed_record_is_not_reproduced(year_ledger, tmp_path, capsys):
    tampered = tmp_path / "tampered.sqlite"
    shutil.copy(year_ledger, tampered)
    (instruction_id, body) = sqlite3.connect(tampered).execute(
        "SELECT instruction_id, body FROM ledger_instructions WHERE kind = 'payment' ORDER BY journal_seq LIMIT 1").fetchone()
    record = json.loads(body)
    record["amount"] = format_fen(parse_amount(record["amount"]) + 10_00)
    with sqlite3.connect(tampered) as db:  # someone with write access to the database, past the append-only triggers
        db.execute("DROP TRIGGER ledger_instructions_no_update")
        db.execute("UPDATE ledger_instructions SET body = ? WHERE instruction_id = ?", (json.dumps(record, ensure_ascii=False), instruction_id))
    assert main(["explain", instruction_id, "--ledger", f"sqlite:///{tampered}"]) == 1
    out = capsys.readouterr().out
    assert "NOT REPRODUCED: 1 difference(s)" in out and "amount paid (the instruction)" in out, out
    assert main(["explain", instruction_id, "--ledger", f"sqlite:///{tampered}", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["differences"][0]["what"] == "amount paid (the instruction)"


@pytest.mark.parametrize("given, message", [
    ("1234567", "is not a decision or instruction id: give its 32 hex digits (hyphens allowed) or a prefix of at least 8"),
    ("zzzzzzzzzz", "is not a decision or instruction id"),
    ("ffffffffffffffffffffffffffffffff", "no decision or instruction is ffffffffffffffffffffffffffffffff in ledger sqlite:///"),
])
def test_mistakes_take_one_line(year_ledger, capsys, given, message):
    assert main(["explain", given, "--ledger", f"sqlite:///{year_ledger}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err, captured.err


def test_no_ledger_and_an_unreachable_one_take_one_line(tmp_path, capsys):
    assert main(["explain", "0123456789abcdef", "--ledger", f"sqlite:///{tmp_path}/none.sqlite"]) == 2
    assert "no ledger at" in capsys.readouterr().err
    assert main(["explain", "0123456789abcdef", "--ledger", "postgresql+psycopg://nobody@127.0.0.1:1/ledger"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("subsidy: error: cannot open ledger postgresql+psycopg://nobody@127.0.0.1:1/ledger") and err.count("\n") == 1, err


class _TwoMatches:
    def ids_starting_with(self, prefix):
        return [("decision", prefix + "0" * 24), ("instruction", prefix + "1" * 24)]


def test_an_ambiguous_prefix_names_what_it_matches():
    from subsidy.cli import CommandError

    with pytest.raises(CommandError, match="0123abcd is the start of 2 ids \\(decision 0123abcd0+, instruction 0123abcd1+\\): give more digits"):
        find_records(_TwoMatches(), "0123abcd", "sqlite:///x")
