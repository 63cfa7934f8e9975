"""`subsidy up`: a local broker and workers until Ctrl-C; a clean stop leaves no folder behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SUBSIDY = Path(sys.executable).parent / "subsidy"


def _up_until_stopped(tmp_path, stop_signal, *flags) -> tuple[int, str]:
    """Start `subsidy up`, wait for its 'Ctrl-C stops' line, stop it with ``stop_signal``."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    ledger = f"sqlite:///{tmp_path}/ledger.sqlite"
    proc = subprocess.Popen([str(SUBSIDY), "up", "--workers", "1", "--ledger", ledger, *flags], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C stops"):
                break
        printed = "".join(lines)
        assert "send a file: subsidy publish EVENTS.jsonl --broker 127.0.0.1:" in printed, printed + proc.stderr.read()
        proc.send_signal(stop_signal)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err


@pytest.mark.integration
def test_up_prints_where_to_publish_and_a_clean_stop_removes_its_folder(tmp_path):
    status, err = _up_until_stopped(tmp_path, signal.SIGINT)
    assert status == 0, err
    assert "stopping" in err and "logs kept" not in err
    assert not list(tmp_path.glob("subsidy-up-*"))
    assert (tmp_path / "ledger.sqlite").exists()  # the ledger is not the run's to remove


@pytest.mark.integration
def test_a_folder_given_with_workdir_is_kept_and_sigterm_stops_as_ctrl_c(tmp_path):
    status, err = _up_until_stopped(tmp_path, signal.SIGTERM, "--workdir", str(tmp_path / "run"))
    assert status == 0, err
    assert f"logs kept in {tmp_path / 'run'}" in err and (tmp_path / "run" / "broker.log").exists()


@pytest.mark.integration
def test_up_on_apache_kafka_runs_production_workers_and_cleans_up(tmp_path):
    status, err = _up_until_stopped(tmp_path, signal.SIGINT, "--kafka", "apache")
    assert status == 0, err
    assert "starting Apache Kafka" in err and "logs kept" not in err
    assert not list(tmp_path.glob("subsidy-up-*"))
