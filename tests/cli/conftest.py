"""A small generated year, shared by the CLI tests (generation is deterministic, so sharing is safe)."""

from __future__ import annotations

import pytest

from rules.policy import load_policy
from subsidy.generate import YearGenerator, generate_file

YEAR, SEED, ENTERPRISES, EVENTS = 2026, 7, 80, 1500


@pytest.fixture(scope="session")
def small_year(tmp_path_factory):
    """(path, generated events) of a small year: every topic, award and invalid kind, operators' voids, few lines."""
    path = tmp_path_factory.mktemp("year") / "events.jsonl"
    generate_file(path, YEAR, seed=SEED, enterprises=ENTERPRISES, events=EVENTS, void_rate=0.005)
    events = YearGenerator(YEAR, SEED, ENTERPRISES, EVENTS, load_policy(), void_rate=0.005).build()
    return path, events


@pytest.fixture(autouse=True)
def _no_default_ledger(monkeypatch, tmp_path):
    """Never write subsidy-ledger.sqlite into the working tree."""
    monkeypatch.setenv("SUBSIDY_LEDGER_URL", f"sqlite:///{tmp_path}/default-ledger.sqlite")
