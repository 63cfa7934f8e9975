"""The pipeline benchmark's CPU figures (g): a process's CPU read from /proc, and our pure
per-input work timed over an event file, the invalid messages included."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.bench_pipeline import core_cpu_per_input, cpu_use
from bench.pipeline_support import cpu_seconds
from subsidy.generate import generate_file


def test_cpu_seconds_counts_what_a_process_spent_and_zero_once_it_is_gone():
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.15
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert cpu_seconds(gone.pid) == 0.0


def test_cpu_use_per_input_and_cores_busy():
    assert cpu_use(2.0, 1_000, 4.0) == {"cpu_s": 2.0, "cpu_us_per_input": 2_000.0, "cores_busy": 0.5}


def test_pure_work_is_timed_over_every_message_of_the_file(tmp_path):
    events = tmp_path / "events.jsonl"
    lines = generate_file(events, 2026, seed=3, enterprises=30, events=300)
    measured = core_cpu_per_input(events)
    assert measured["inputs"] == lines  # the generator's invalid messages are inputs too
    parts = measured["parts_us_per_input"]
    assert list(parts) == ["intake", "claim_encoded", "claim_decoded", "engine", "outputs_encoded"]
    assert measured["cpu_us_per_input"] == pytest.approx(sum(parts.values()), abs=0.5) and measured["cpu_us_per_input"] > 0
