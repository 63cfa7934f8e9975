"""`subsidy demo`, the README's first command: a real local broker, a worker and a SQLite ledger,
ending with the comparison to the replay and where to look at what it kept."""

from __future__ import annotations

import tempfile

import pytest

from subsidy.cli import main


@pytest.mark.integration
@pytest.mark.parametrize("kafka", ["tansu", "apache"])
def test_the_demo_matches_the_replay_and_says_what_it_kept(kafka, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["demo", "--events", "400", "--enterprises", "30", "--workers", "1", "--timeout", "180", "--kafka", kafka]) == 0
    out = capsys.readouterr().out
    assert ("(Apache Kafka 4." in out) == (kafka == "apache") and ("(local tansu" in out) == (kafka == "tansu"), out
    assert "RESULT     the pipeline's ledger matches the replay to the fen" in out
    kept = [line for line in out.splitlines() if line.startswith("kept ")]
    assert len(kept) == 1, out
    (workdir,) = tmp_path.glob("subsidy-demo-*")
    assert (workdir / "events.jsonl").exists() and (workdir / "ledger.sqlite").exists()
    assert str(workdir) in kept[0] and f"subsidy console --ledger sqlite:///{workdir}/ledger.sqlite" in kept[0]
