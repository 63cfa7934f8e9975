from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET

import pytest

from sinks.cli import main
from sinks.export import PAIN001_NS, pain001_schema
from sinks.ledger import Ledger
from tests.ledger.factory import TIMEZONE, purchase, run

EVENTS = [
    purchase("e1", 1, "1000.00", when="2026-03-01T09:00:00+08:00"),
    purchase("e2", 2, "2500.50", when="2026-03-02T09:00:00+08:00"),
    purchase("e3", 3, "100.00", when="2026-04-01T09:00:00+08:00"),
    purchase("r1", 1, "500.00", refund_of="e1", when="2026-03-03T09:00:00+08:00"),
]


@pytest.fixture
def filled(ledger_url, tmp_path):
    out = run(EVENTS)
    with Ledger.open(ledger_url, timezone=TIMEZONE) as ledger:
        ledger.record(out.decisions, out.instructions, out.rejections)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps({"topic": t, "value": v}) + "\n" for t, v in EVENTS))
    return ledger_url, out, events


def test_csv_export_control_totals(filled, tmp_path, capsys):
    url, out, _ = filled
    target = tmp_path / "march.csv"
    assert main(["ledger", "export", "--ledger", url, "--format", "csv", "--from", "2026-03-01", "--to", "2026-03-31", "--out", str(target)]) == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    details, trailer = rows[:-1], rows[-1]
    assert [r["kind"] for r in details] == ["payment", "payment", "clawback"]
    assert {r["end_to_end_id"] for r in details} == {i.instruction_id for i in out.instructions[:2] + out.instructions[3:]}
    assert trailer["record_type"] == "T" and trailer["kind"] == "transactions=3"
    assert trailer["amount"] == "1800.30"  # 600.00 + 1500.30 - 300.00 (clawback of half of e1)
    assert len({r["batch_id"] for r in rows}) == 1
    again = tmp_path / "again.csv"
    main(["ledger", "export", "--ledger", url, "--format", "csv", "--from", "2026-03-01", "--to", "2026-03-31", "--out", str(again)])
    assert again.read_bytes() == target.read_bytes()
    assert "control sum 1800.30" in capsys.readouterr().err


def test_pain001_validates_against_the_xsd(filled, tmp_path):
    url, out, _ = filled
    target = tmp_path / "pain.xml"
    args = ["ledger", "export", "--ledger", url, "--format", "pain001", "--from", "2026-03-01", "--to", "2026-04-30", "--out", str(target), "--created-at", "2026-05-01T08:00:00+08:00"]
    assert main(args) == 0
    data = target.read_bytes()
    pain001_schema().validate(io.BytesIO(data))
    ns = {"p": PAIN001_NS}
    root = ET.fromstring(data)
    header = root.find("p:CstmrCdtTrfInitn/p:GrpHdr", ns)
    payments = [i for i in out.instructions if i.kind == "payment"]
    assert header.findtext("p:NbOfTxs", namespaces=ns) == str(len(payments)) == "3"
    assert header.findtext("p:CtrlSum", namespaces=ns) == "2160.30"  # 600.00 + 1500.30 + 60.00
    ids = [e.text for e in root.iterfind(".//p:CdtTrfTxInf/p:PmtId/p:EndToEndId", ns)]
    assert sorted(ids) == sorted(i.instruction_id for i in payments)
    second = tmp_path / "pain2.xml"
    main(args[:-4] + ["--out", str(second), "--created-at", "2026-05-01T08:00:00+08:00"])
    assert second.read_bytes() == data  # deterministic batch id and content


def test_each_export_says_whether_its_total_nets_the_clawbacks(filled, tmp_path, capsys):
    url, _, _ = filled
    march = ["--ledger", url, "--from", "2026-03-01", "--to", "2026-03-31"]
    assert main(["ledger", "export", "--format", "csv", *march, "--out", str(tmp_path / "march.csv")]) == 0
    assert "control sum 1800.30 CNY (payments net of clawbacks)" in capsys.readouterr().err
    assert main(["ledger", "export", "--format", "pain001", *march, "--out", str(tmp_path / "march.xml")]) == 0
    err = capsys.readouterr().err
    assert "control sum 2100.30 CNY (payments only: 1 clawback(s) in the range, -300.00 CNY, are left out; the CSV export has them)" in err
    assert main(["ledger", "export", "--format", "pain001", "--ledger", url, "--from", "2026-04-01", "--out", str(tmp_path / "april.xml")]) == 0
    assert "(payments only; no clawbacks in the range)" in capsys.readouterr().err


def test_balance_text_and_json_show_payables_with_the_same_sign(filled, capsys):
    """A payable is a liability: what is owed to the payee, positive, in both outputs."""
    url, out, _ = filled
    provider = out.instructions[0].payee.id
    assert main(["ledger", "balance", "--ledger", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accounts"][f"payable:{provider}"] == "1860.30"
    assert main(["ledger", "balance", "--ledger", url]) == 0
    assert re.search(rf"payable:{provider} +1860\.30\n", capsys.readouterr().out)


def test_reconcile_against_replay_and_instructions(filled, tmp_path, capsys):
    url, out, events = filled
    assert main(["ledger", "reconcile", "--ledger", url, "--against", str(events)]) == 0
    dump = tmp_path / "instructions.jsonl"
    dump.write_text("".join(json.dumps(i.to_wire()) + "\n" for i in out.instructions))
    assert main(["ledger", "reconcile", "--ledger", url, "--against-instructions", str(dump)]) == 0
    # An event the ledger never got: the replay expects more than the ledger holds.
    with events.open("a") as f:
        f.write(json.dumps({"topic": "compute-purchases", "value": purchase("e9", 9, "10.01")[1]}) + "\n")
    capsys.readouterr()
    assert main(["ledger", "reconcile", "--ledger", url, "--against", str(events)]) == 1
    printed = capsys.readouterr().out
    assert "is missing from the ledger" in printed and "difference -6.00" in printed


def test_balance_and_statement(filled, capsys):
    url, out, _ = filled
    assert main(["ledger", "balance", "--ledger", url, "--fiscal-year", "2026", "--json"]) == 0
    balance = json.loads(capsys.readouterr().out)
    assert balance["accounts"]["budget:chengdu-ai-2025:compute-voucher:2026"] == "1860.30"
    # the programme's budget beside what it paid: the ledger's own cap row, not the policy file
    assert balance["programme_caps"] == [{"clause_id": "compute-voucher", "cap_id": "programme-year", "period": "2026", "kind": "amount",
                                          "limit": "100000000.00", "used": "1860.30", "room": "99998139.70"}]
    assert main(["ledger", "balance", "--ledger", url, "--fiscal-year", "2025", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["programme_caps"] == []
    assert main(["ledger", "balance", "--ledger", url]) == 0
    assert re.search(r"compute-voucher 2026 programme-year +100000000\.00 +1860\.30 +99998139\.70", capsys.readouterr().out)
    provider = out.instructions[0].payee.id
    assert main(["ledger", "statement", "--ledger", url, "--payee", provider, "--fiscal-year", "2026", "--json"]) == 0
    statement = json.loads(capsys.readouterr().out)
    assert statement["balance"] == "1860.30" and len(statement["entries"]) == 4
    assert main(["ledger", "init", "--ledger", url]) == 0
    assert re.search(r"at schema revision \d{4}_\w+: 4 decisions", capsys.readouterr().out)  # the newest migration


def test_unreachable_ledger_is_a_one_line_error(capsys, tmp_path):
    assert main(["ledger", "balance", "--ledger", "mysql://nowhere/x"]) == 2
    assert "cannot open ledger" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["balance"],
    ["statement", "--payee", "91510100MA61234567", "--fiscal-year", "2026"],
    ["export", "--format", "csv"],
    ["reconcile"],
])  # fmt: skip
def test_a_reading_command_on_no_ledger_says_so_and_creates_none(ledger_url, command, capsys):
    # A mistyped --ledger must not answer "total granted: 0.00 CNY" from a ledger made up on the spot.
    from sinks.ledger import holds_ledger

    assert main(["ledger", command[0], "--ledger", ledger_url, *command[1:]]) == 2
    err = capsys.readouterr().err
    assert "no ledger at" in err and "subsidy ledger init" in err
    assert not holds_ledger(ledger_url)
    assert main(["ledger", "init", "--ledger", ledger_url]) == 0
    # an empty ledger holds no payee to state: said as such, not as 0.00 owed
    assert main(["ledger", command[0], "--ledger", ledger_url, *command[1:]]) == (1 if command[0] == "statement" else 0)
