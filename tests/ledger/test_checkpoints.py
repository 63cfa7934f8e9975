"""Signed checkpoints outside the database (issue 27): the key, when workers sign, and every
export carrying one. Detection against them, row by row of the tamper table: test_tamper.py."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest

from sinks.cli import main
from sinks.export import CHECKPOINT_NS, PAIN001_NS, batch_csv, batch_pain001, pain001_lxml_schema, pain001_schema
from sinks.ledger import Ledger
from sinks.ledger.checkpoints import Checkpoint, CheckpointSchedule, SigningKey, generate_key, load_public_keys, make_checkpoint
from tests.ledger.factory import TIMEZONE, purchase, run


@pytest.fixture
def keyed(tmp_path, monkeypatch):
    """A ledger with two payments, and $SUBSIDY_CHECKPOINT_KEY naming a fresh key."""
    key = tmp_path / "checkpoint.pem"
    generate_key(key)
    monkeypatch.setenv("SUBSIDY_CHECKPOINT_KEY", str(key))
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    out = run([purchase("e1", 1, "1000.00", when="2026-03-01T09:00:00+08:00"), purchase("e2", 2, "2000.00", when="2026-03-02T09:00:00+08:00")])
    with Ledger.open(url, timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, [])
    return SimpleNamespace(url=url, key=key, keys=load_public_keys([f"{key}.pub"]))


def test_keygen_writes_a_private_key_for_its_owner_and_never_overwrites_it(tmp_path, capsys):
    target = tmp_path / "k.pem"
    assert main(["ledger", "keygen", "--out", str(target)]) == 0
    assert target.stat().st_mode & 0o777 == 0o600 and (tmp_path / "k.pem.pub").is_file()
    before = target.read_bytes()
    assert main(["ledger", "keygen", "--out", str(target)]) == 2
    assert "is never overwritten" in capsys.readouterr().err and target.read_bytes() == before
    (tmp_path / "bad.pem").write_text("not a key")
    assert main(["ledger", "verify", "--ledger", "sqlite:///nowhere.sqlite", "--checkpoints", str(tmp_path / "none.jsonl"), "--public-key", str(tmp_path / "bad.pem")]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line, no traceback


def test_the_schedule_signs_every_n_entries_or_m_minutes(keyed):
    with Ledger.open(keyed.url, timezone=TIMEZONE) as ledger:
        schedule = CheckpointSchedule(SigningKey.load(keyed.key), every_entries=3, every_seconds=60)
        first = schedule.due(ledger, now=0.0)
        assert first is not None and first.seq == 3 and first.entries == 2  # two entries and the fact covering their decisions
        schedule.published(first, 0.0)
        assert schedule.due(ledger, now=1.0) is None  # nothing new
        more = run([purchase("e3", 3, "100.00")])
        ledger.record(more.decisions, more.instructions, [])
        assert schedule.due(ledger, now=2.0) is None  # 2 entries since: fewer than 3, and not a minute yet
        late = schedule.due(ledger, now=61.0)
        assert late is not None and late.seq == 5 and late.signed_by(keyed.keys) is None


def test_ledger_export_carries_the_head_signed(keyed, tmp_path):
    target = tmp_path / "march.csv"
    assert main(["ledger", "export", "--ledger", keyed.url, "--format", "csv", "--out", str(target)]) == 0
    rows = list(csv.reader(io.StringIO(target.read_text())))
    assert [row[0] for row in rows[1:]] == ["C", "D", "D", "T"]  # the checkpoint first, the trailer still last
    line = dict(part.split("=", 1) for part in rows[1][3].removeprefix("ledger checkpoint ").split(" "))
    assert line["seq"] == "3" and line["entries"] == "2"
    pain = tmp_path / "pain.xml"
    assert main(["ledger", "export", "--ledger", keyed.url, "--format", "pain001", "--out", str(pain), "--created-at", "2026-05-01T08:00:00+08:00"]) == 0
    pain001_schema().validate(io.BytesIO(pain.read_bytes()))
    found = ET.fromstring(pain.read_bytes()).find(f"{{{PAIN001_NS}}}CstmrCdtTrfInitn/{{{PAIN001_NS}}}SplmtryData/{{{PAIN001_NS}}}Envlp/{{{CHECKPOINT_NS}}}LedgerCheckpoint")
    assert found is not None
    checkpoint = Checkpoint.from_dict({"seq": found.findtext(f"{{{CHECKPOINT_NS}}}Seq"), "head_hash": found.findtext(f"{{{CHECKPOINT_NS}}}HeadHash"),
                                       "entries": found.findtext(f"{{{CHECKPOINT_NS}}}Entries"), "time": found.findtext(f"{{{CHECKPOINT_NS}}}Time"),
                                       "key_id": found.findtext(f"{{{CHECKPOINT_NS}}}KeyId"), "signature": found.findtext(f"{{{CHECKPOINT_NS}}}Signature")})
    assert checkpoint.signed_by(keyed.keys) is None and checkpoint.seq == 3


def test_a_payment_file_carries_the_checkpoint_where_the_xsd_allows(keyed, tmp_path, monkeypatch):
    checkpoints = tmp_path / "checkpoints.jsonl"
    with Ledger.open(keyed.url) as ledger:
        signed = make_checkpoint(ledger, SigningKey.load(keyed.key))
        checkpoints.write_text(signed.to_json() + "\n")
        state = SimpleNamespace(batch_id="PB000001", number_of_transactions=1, control_sum_fen=60000)
        item = SimpleNamespace(instruction_id="0e996b035b765be8a3c3c0d4d9436b13", payee_id="p1", payee_kind="enterprise", amount_fen=60000, account_name="A", account_number="1",
                               bank_code="011651000018", policy_id="chengdu-ai-2025", clause_id="compute-voucher", fiscal_year=2026, value_date="2026-03-01",
                               reissue=0)
        data = batch_pain001(state, [item], created_at="2026-05-01T08:00:00+08:00", execution_date="2026-05-02", checkpoint=signed)
    from lxml import etree

    assert pain001_lxml_schema().validate(etree.fromstring(data))
    assert f"<HeadHash>{signed.head_hash}</HeadHash>".encode() in data
    assert batch_csv(state, [item], signed).splitlines()[1].startswith(f"C,PB000001,,ledger checkpoint seq={signed.seq} ")
    # without the key, the newest published checkpoint is the one carried
    monkeypatch.delenv("SUBSIDY_CHECKPOINT_KEY")
    monkeypatch.setenv("SUBSIDY_CHECKPOINTS", str(checkpoints))
    target = tmp_path / "out.csv"
    assert main(["ledger", "export", "--ledger", keyed.url, "--format", "csv", "--out", str(target)]) == 0
    assert json.dumps(signed.signature)[1:-1] in target.read_text()
