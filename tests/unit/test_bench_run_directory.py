"""Benchmarks clean up their run directories when they pass, and keep them for their logs when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import in_run_directory


def run_ending_with(code: int, seen: list[Path]):
    """A run that writes a log into its directory, notes where, and exits with ``code``."""

    def run(directory: Path) -> int:
        (directory / "broker.log").write_text("worker 1 died\n")
        seen.append(directory)
        return code

    return run


def test_a_run_that_passed_leaves_nothing_behind():
    seen: list[Path] = []
    assert in_run_directory("bench-test-", run_ending_with(0, seen)) == 0
    assert not seen[0].exists()


def test_a_run_that_failed_keeps_its_logs_and_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    seen: list[Path] = []
    assert in_run_directory("bench-test-", run_ending_with(1, seen)) == 1
    assert (seen[0] / "broker.log").read_text() == "worker 1 died\n"
    assert str(seen[0]) in capsys.readouterr().err


def test_a_run_that_raised_keeps_its_directory(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))

    def run(directory: Path) -> int:
        raise SystemExit("the no-op Faust worker did not finish")

    with pytest.raises(SystemExit):
        in_run_directory("bench-test-", run)
    assert [p.name.startswith("bench-test-") for p in tmp_path.iterdir()] == [True]


def test_a_directory_the_user_named_is_kept(tmp_path):
    given = tmp_path / "replay"
    assert in_run_directory("bench-test-", lambda directory: 0, given=str(given)) == 0
    assert given.is_dir()
