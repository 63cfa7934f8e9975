"""Mistakes a user makes: one line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from subsidy.cli import main
from subsidy.progress import Progress

SUBSIDY = Path(sys.executable).parent / "subsidy"


def _one_line_error(capsys, argv) -> str:
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse refused an argument
        status = exit_.code
    assert status == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("subsidy: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_missing_policy_file(small_year, capsys):
    path, _ = small_year
    err = _one_line_error(capsys, ["replay", str(path), "--policy", "/no/such/policy.yaml"])
    assert "/no/such/policy.yaml" in err


def test_bad_policy_file_says_file_and_line(small_year, tmp_path, capsys):
    path, _ = small_year
    policy = tmp_path / "policy.yaml"
    policy.write_text("policy_id: x\nsources: [not, a, mapping\n", encoding="utf-8")
    err = _one_line_error(capsys, ["replay", str(path), "--policy", str(policy)])
    assert f"{policy}:" in err


def test_bad_policy_via_installed_script(small_year):
    path, _ = small_year
    proc = subprocess.run([str(SUBSIDY), "replay", str(path), "--policy", "/no/such/policy.yaml", "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("subsidy: error: ") and proc.stderr.count("\n") == 1


def test_missing_events_file(tmp_path, capsys):
    err = _one_line_error(capsys, ["replay", str(tmp_path / "missing.jsonl")])
    assert "missing.jsonl" in err


def test_bad_ledger_url(small_year, capsys):
    path, _ = small_year
    err = _one_line_error(capsys, ["replay", str(path), "--ledger", "mysql://user:secret@db/ledger"])
    assert "secret" not in err


def test_unwritable_generate_output(capsys):
    _one_line_error(capsys, ["generate", "--year", "2026", "--out", "/no/such/dir/x.jsonl", "--events", "300"])


def test_progress_is_silent_off_a_terminal_and_shows_rate_and_eta_on_one():
    import io

    quiet = io.StringIO()
    with Progress(100, "replay", stream=quiet) as bar:
        bar.update(50)
    assert quiet.getvalue() == ""
    loud = io.StringIO()
    bar = Progress(100, "replay", stream=loud, enabled=True, hz=1e9)
    bar.update(50)
    text = bar.render()
    assert "50/100" in text and "ev/s" in text and "ETA" in text
    bar.close()
    assert loud.getvalue().startswith("\r") and loud.getvalue().endswith("\n")


def test_other_input_into_the_same_ledger_is_refused_in_one_line(small_year, tmp_path, capsys):
    """A different year reusing the same event ids: the ledger refuses, the command says why."""
    from subsidy.generate import generate_file

    path, _ = small_year
    other = tmp_path / "other.jsonl"
    generate_file(other, 2026, seed=99, enterprises=80, events=300)
    url = f"sqlite:///{tmp_path}/conflict.sqlite"
    assert main(["replay", str(other), "--ledger", url, "--json"]) == 0
    capsys.readouterr()
    err = _one_line_error(capsys, ["replay", str(path), "--ledger", url, "--json"])
    assert "fresh ledger" in err and "lines 1-" in err


def test_trace_says_which_broker_to_read(monkeypatch, capsys):
    monkeypatch.delenv("SUBSIDY_BROKER", raising=False)
    err = _one_line_error(capsys, ["trace", "4b56f0e7cba4581b9da9818c98e86c24"])
    assert "--broker" in err


@pytest.mark.parametrize("broker", ["127.0.0.1:9", "127.0.0.1:1"])
def test_trace_of_an_unreachable_broker_is_one_line(capsys, broker):
    err = _one_line_error(capsys, ["trace", "4b56f0e7cba4581b9da9818c98e86c24", "--broker", broker])
    assert f"no broker answered at {broker}" in err and "--broker" in err


@pytest.mark.parametrize("flags, named", [
    (["--format", "pain001", "--execution-date", "2026-99-99"], "'2026-99-99'"),
    (["--format", "pain001", "--created-at", "yesterday"], "'yesterday'"),
    (["--format", "pain001", "--to", "2026-03-32"], "'2026-03-32'"),
    (["--format", "csv", "--from", "foo"], "'foo'"),
    (["--format", "csv", "--from", "2026-13-01"], "'2026-13-01'"),
    (["--format", "csv", "--from", "2026-02-30"], "'2026-02-30'"),  # not a day: would export from March on
    (["--format", "csv", "--from", "2026-06-01", "--to", "2026-01-01"], "swap them"),
])  # fmt: skip
def test_export_refuses_a_date_that_is_not_one(small_year, tmp_path, capsys, flags, named):
    path, _ = small_year
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    assert main(["replay", str(path), "--ledger", url, "--json"]) == 0
    capsys.readouterr()
    err = _one_line_error(capsys, ["ledger", "export", "--ledger", url, *flags])
    assert named in err


def test_an_argument_argparse_refuses_is_one_line(capsys):
    err = _one_line_error(capsys, ["ledger", "export", "--format", "xml"])
    assert "invalid choice: 'xml'" in err and "subsidy ledger export --help" in err


@pytest.mark.parametrize("command", [
    ["replay", "EVENTS"],
    ["ledger", "balance"],
    ["ledger", "export", "--format", "csv"],
    ["console"],
])  # fmt: skip
def test_a_ledger_path_instead_of_a_url_says_how_to_write_it(small_year, tmp_path, capsys, command):
    path, _ = small_year
    ledger = tmp_path / "ledger.sqlite"
    argv = [str(path) if word == "EVENTS" else word for word in command]
    err = _one_line_error(capsys, [*argv, "--ledger", str(ledger)])
    assert str(ledger) in err and f"sqlite:///{ledger}" in err and "unparsable" not in err


def test_up_with_a_bad_ledger_url_starts_nothing_and_leaves_no_folder(tmp_path):
    # a subprocess: `up` takes over SIGTERM in the process that runs it
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    proc = subprocess.run([str(SUBSIDY), "up", "--ledger", "foo"], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"subsidy: error: cannot open ledger foo: a path, not a URL: write sqlite:///{tmp_path.resolve()}/foo for a SQLite file\n"
    assert list(temp.iterdir()) == []


def test_console_on_a_port_in_use_is_one_line(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    assert main(["ledger", "init", "--ledger", url]) == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([str(SUBSIDY), "console", "--ledger", url, "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"subsidy: error: cannot serve on 127.0.0.1:{port}: ") and proc.stderr.count("\n") == 1
    assert "--port" in proc.stderr


def test_every_option_of_every_command_says_what_it_does():
    from subsidy.cli import build_parser

    def unexplained(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command, subparser in action.choices.items():
                    yield from unexplained(subparser, f"{name} {command}")
            elif action.option_strings and action.help is None:
                yield f"{name} {action.option_strings[0]}"

    assert list(unexplained(build_parser(), "subsidy")) == []


def test_statement_of_a_payee_the_ledger_never_paid_says_so(small_year, tmp_path, capsys):
    path, _ = small_year
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    assert main(["replay", str(path), "--ledger", url, "--json"]) == 0
    capsys.readouterr()
    assert main(["ledger", "statement", "--ledger", url, "--payee", "NOPE", "--fiscal-year", "2026"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("subsidy: error: no payee 'NOPE' in ledger ") and "subsidy ledger balance" in err


def test_replay_of_a_file_with_no_event_envelope_is_refused_and_stores_nothing(tmp_path, capsys):
    readme = Path(__file__).resolve().parents[2] / "README.md"
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    err = _one_line_error(capsys, ["replay", str(readme), "--ledger", url])
    assert "not one of its" in err and "event envelope" in err and "nothing was stored" in err
    from sinks.ledger import Ledger

    with Ledger.open(url) as ledger:
        assert ledger.counts() == {"decisions": 0, "instructions": 0, "rejections": 0}


def test_replay_with_some_bad_lines_among_events_succeeds(small_year, tmp_path, capsys):
    path, _ = small_year
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("not an envelope\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["replay", str(mixed), "--ledger", f"sqlite:///{tmp_path}/ledger.sqlite", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rejected"] >= 1
