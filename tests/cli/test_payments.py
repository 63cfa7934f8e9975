"""``subsidy payees`` and ``subsidy payments`` as finance runs them, in the README's order; every
refusal one line on stderr and a non-zero status."""

from __future__ import annotations

import io
import json

import pytest

from parties import uscc
from sinks.export import pain001_schema
from sinks.ledger import Ledger
from subsidy.cli import main
from tests.ledger.factory import TIMEZONE, purchase, run

HEADER = "payee_id,account_name,account_number,bank_code,verified_at\n"
PAID, UNKNOWN = uscc(9_000_000), uscc(9_000_001)


@pytest.fixture
def ledger(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    out = run([purchase("e1", 1, "1000.00"), purchase("e2", 2, "2500.50"), purchase("e3", 3, "100.00", provider=9_000_001),
               purchase("r1", 1, "500.00", refund_of="e1", when="2026-03-11T10:00:00+08:00")])
    with Ledger.open(url, timezone=TIMEZONE) as opened:
        opened.record(out.decisions, out.instructions, [])
    return ["--ledger", url]


def refused(capsys, argv) -> str:
    """The command's one line on stderr; its status is non-zero."""
    assert main(argv) != 0
    out, err = capsys.readouterr()
    assert err.startswith("subsidy: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_from_accounts_to_the_payment_file(ledger, tmp_path, capsys):
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(HEADER + f"{PAID},成都超算中心运营管理有限公司,6222021001012345678,102651020012,2026-02-01T10:00:00+08:00\n", encoding="utf-8")
    assert main(["payees", "import", str(accounts), *ledger]) == 0
    assert "1 account(s) new" in capsys.readouterr().out
    assert main(["payees", "import", str(accounts), *ledger]) == 0  # the same file again adds nothing
    assert "0 account(s) new, 1 already in the ledger" in capsys.readouterr().out
    assert main(["payees", "list", "--json", *ledger]) == 0
    assert [a["account_number"] for a in json.loads(capsys.readouterr().out)["accounts"]] == ["6222021001012345678"]

    assert main(["payments", "batch", "--as", "alice", *ledger]) == 0
    out = capsys.readouterr().out
    assert "batch PB000001 proposed by alice: 2 payment(s), 1800.30 CNY" in out
    assert "awaiting account: 1 payment(s) of 1 payee(s), 60.00 CNY" in out
    assert "clawbacks left out: 1, -300.00 CNY" in out
    assert "netted: 300.00 CNY that payees owe back withheld from their payments (1 offset(s))" in out
    assert main(["payments", "awaiting", "--json", *ledger]) == 0
    assert json.loads(capsys.readouterr().out)["awaiting"] == [{"payee_id": UNKNOWN, "payee_name": "超算中心", "payments": 1, "amount": "60.00"}]

    assert "alice proposed batch PB000001 and may not approve it" in refused(capsys, ["payments", "approve", "PB000001", "--as", "alice", *ledger])
    target = tmp_path / "pain.xml"
    assert "is not approved (0 of 1 approvals)" in refused(capsys, ["payments", "export", "PB000001", "--format", "pain001", "--out", str(target), *ledger])
    assert not target.exists()
    assert main(["payments", "approve", "PB000001", "--as", "bob", *ledger]) == 0
    assert "approved by bob" in capsys.readouterr().out

    assert main(["payments", "export", "PB000001", "--format", "csv", *ledger]) == 0
    csv_out, err = capsys.readouterr()
    assert csv_out.splitlines()[-1].startswith("T,PB000001,,transactions=2,,,,1800.30,CNY") and "not marked sent" in err
    assert main(["payments", "export", "PB000001", "--format", "pain001", "--out", str(target), "--as", "carol", *ledger]) == 0
    assert "now marked sent" in capsys.readouterr().err
    pain001_schema().validate(io.BytesIO(target.read_bytes()))
    assert main(["payments", "list", "--json", *ledger]) == 0
    [batch] = json.loads(capsys.readouterr().out)["batches"]
    assert (batch["status"], batch["maker"], batch["approvers"]) == ("sent", "alice", ["bob"])
    assert main(["ledger", "reconcile", *ledger]) == 0
    assert "hash chain intact" in capsys.readouterr().err


def test_a_bad_csv_line_is_named_and_nothing_is_imported(ledger, tmp_path, capsys):
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(HEADER + f"{PAID},甲,6222021001012345678,102651020012,2026-02-01T10:00:00+08:00\n"
                        f"{UNKNOWN},乙,6222021001012345679,10265102001,2026-02-01T10:00:00+08:00\n"
                        f"{UNKNOWN},乙,62220,102651020012,2026-02-01T10:00:00+08:00\n", encoding="utf-8")
    err = refused(capsys, ["payees", "import", str(accounts), *ledger])
    assert f"{accounts}:3: bank_code:" in err and "12-digit CNAPS" in err and "(and 1 more bad line(s)); nothing imported" in err
    assert main(["payees", "list", *ledger]) == 0
    assert "0 payee(s) with a verified, unrevoked account" in capsys.readouterr().out
    accounts.write_text("payee,account\n", encoding="utf-8")
    assert ":1: the header must be payee_id,account_name,account_number,bank_code,verified_at" in refused(capsys, ["payees", "import", str(accounts), *ledger])
    accounts.write_text(HEADER + f"{PAID},甲,6222021001012345678,102651020012,2026-02-01\n", encoding="utf-8")
    assert ":2: verified_at:" in refused(capsys, ["payees", "import", str(accounts), *ledger])


def test_two_approvers_above_the_configured_amount(ledger, tmp_path, capsys, monkeypatch):
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(HEADER + f"{PAID},甲,6222021001012345678,102651020012,2026-02-01T10:00:00+08:00\n", encoding="utf-8")
    main(["payees", "import", str(accounts), *ledger])
    monkeypatch.setenv("SUBSIDY_DUAL_APPROVAL_ABOVE", "1500.00")
    assert main(["payments", "batch", "--as", "alice", *ledger]) == 0
    assert "needs two approvers (over 1500.00 CNY)" in capsys.readouterr().out
    assert main(["payments", "approve", "PB000001", "--as", "bob", *ledger]) == 0
    assert "approval 1 of 2 recorded" in capsys.readouterr().out
    assert "bob has already approved batch PB000001" in refused(capsys, ["payments", "approve", "PB000001", "--as", "bob", *ledger])
    assert "is not approved (1 of 2 approvals)" in refused(capsys, ["payments", "export", "PB000001", "--format", "csv", *ledger])
    assert main(["payments", "approve", "PB000001", "--as", "carol", *ledger]) == 0
    assert "approved by bob, carol" in capsys.readouterr().out
    monkeypatch.setenv("SUBSIDY_DUAL_APPROVAL_ABOVE", "lots")
    assert "SUBSIDY_DUAL_APPROVAL_ABOVE='lots'" in refused(capsys, ["payments", "batch", "--as", "alice", *ledger])


def test_an_unknown_batch_and_nothing_to_batch(ledger, capsys):
    assert "no batch 'PB999999'" in refused(capsys, ["payments", "approve", "PB999999", "--as", "bob", *ledger])
    assert "no batch 'PB999999'" in refused(capsys, ["payments", "export", "PB999999", "--format", "pain001", *ledger])
    assert "3 payment(s) awaiting an account" in refused(capsys, ["payments", "batch", "--as", "alice", *ledger])


def test_a_file_that_cannot_be_written_leaves_the_batch_unsent(ledger, tmp_path, capsys):
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(HEADER + f"{PAID},甲,6222021001012345678,102651020012,2026-02-01T10:00:00+08:00\n", encoding="utf-8")
    main(["payees", "import", str(accounts), *ledger])
    main(["payments", "batch", "--as", "alice", *ledger])
    main(["payments", "approve", "PB000001", "--as", "bob", *ledger])
    capsys.readouterr()
    err = refused(capsys, ["payments", "export", "PB000001", "--format", "pain001", "--out", str(tmp_path / "no" / "such" / "folder.xml"), *ledger])
    assert "cannot write" in err and "not marked sent" in err
    assert main(["payments", "list", "--json", *ledger]) == 0
    assert json.loads(capsys.readouterr().out)["batches"][0]["status"] == "approved"


def test_replay_stores_the_accounts_of_payee_accounts_lines_and_rejects_a_bad_one(tmp_path, capsys):
    account = {"event_id": "acct-1", "source": "enterprise-registry", "occurred_at": "2026-02-20T16:05:00+08:00", "beneficiary": {"uscc": PAID, "name": "超算中心"},
               "account_name": "成都超算中心运营管理有限公司", "account_number": "4402238109100012345", "bank_code": "102651020012", "verified_at": "2026-02-20T16:04:31+08:00"}
    lines = [{"topic": topic, "value": value} for topic, value in [purchase("e1", 1, "1000.00"), ("payee-accounts", account),
                                                                   ("payee-accounts", {**account, "event_id": "acct-2", "source": "scc-billing"})]]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    ledger = ["--ledger", f"sqlite:///{tmp_path / 'ledger.sqlite'}"]
    assert main(["replay", str(events), *ledger]) == 0
    out = capsys.readouterr().out
    assert "rejected    1 (unknown-source 1)" in out and "accounts    1 payee-accounts messages" in out
    assert main(["payments", "batch", "--as", "alice", *ledger]) == 0
    assert "batch PB000001 proposed by alice: 1 payment(s), 600.00 CNY" in capsys.readouterr().out
