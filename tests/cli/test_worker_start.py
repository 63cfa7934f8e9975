"""A worker that cannot start says why in one line, with a sysexits status, before any agent runs.
Topics that do not fit it (78): tests/integration/test_topics_on_apache_kafka.py."""

from __future__ import annotations

import streams.topics
from streams.loopback import free_port
from streams.worker import CONFIG_EXIT, UNAVAILABLE_EXIT
from subsidy.cli import main


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("subsidy: error: ")]
    assert len(errors) == 1, err
    return errors[0]


def test_a_broker_nobody_answers_at(monkeypatch, tmp_path, capsys):
    # The real client against a port nobody listens on, with 2 s instead of the worker's 15 s to give up.
    monkeypatch.setattr(streams.topics, "BROKER_TIMEOUT_SECONDS", 2.0)
    broker = f"127.0.0.1:{free_port()}"
    assert main(["worker", "--broker", broker, "--ledger", f"sqlite:///{tmp_path}/ledger.sqlite"]) == UNAVAILABLE_EXIT
    line = _error_line(capsys)
    assert f"cannot reach the broker at {broker}" in line and "--broker" in line


def test_a_ledger_that_cannot_be_opened(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    ledger = f"sqlite:///{tmp_path}/a-file/ledger.sqlite"  # a folder that is a file
    assert main(["worker", "--broker", "127.0.0.1:9", "--no-create-topics", "--ledger", ledger]) == UNAVAILABLE_EXIT
    line = _error_line(capsys)
    assert f"cannot open the ledger {ledger}" in line and "--ledger" in line


def test_a_faust_or_aiokafka_the_fixes_were_not_proven_on(monkeypatch, tmp_path, capsys):
    from streams.faust_runtime import versions as faust_patching

    monkeypatch.setattr(faust_patching, "version", dict(faust_patching.PROVEN_ON, **{"faust-streaming": "0.16.0"}).__getitem__)
    assert main(["worker", "--broker", f"127.0.0.1:{free_port()}", "--ledger", f"sqlite:///{tmp_path}/ledger.sqlite"]) == CONFIG_EXIT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "faust-streaming 0.16.0 (proven: 0.15.3)" in err, err
