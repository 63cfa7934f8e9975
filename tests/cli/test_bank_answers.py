"""A year's payments from batch to reconciled statement, as finance runs them (README, "Paying"):
batch, approve (never by the maker), export, the bank's answers with 2 % returns and 1 %
rejections (``subsidy bank-sim``), ingest, corrected accounts, re-issue, a void (decided by a
replay of the events with it, its room back under the caps), and statements that match. On SQLite, and once on PostgreSQL (the issue's end-to-end test)."""

from __future__ import annotations

import json
import shutil
import zlib
from collections import Counter

import pytest
import sqlalchemy as sa

from bench.common import fresh_database
from parties import uscc
from rules.money import parse_amount
from sinks.iso20022_answers import camt053, camt054, end_to_end_id, read_answers, read_statement
from sinks.ledger import Ledger
from subsidy.cli import main
from tests.ledger.factory import TIMEZONE, purchase

HEADER = "payee_id,account_name,account_number,bank_code,verified_at\n"
PAYEES = 100


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def ledger(request, tmp_path, capsys):
    """A ledger holding a year of 100 paid purchases, one payee each, replayed from events.jsonl."""
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps({"topic": topic, "value": value}, ensure_ascii=False) + "\n"
                              for topic, value in (purchase(f"e{n}", n + 1, f"{1000 + 37 * n}.{n % 100:02d}", provider=9_100_000 + n) for n in range(PAYEES))),
                      encoding="utf-8")

    def filled(url: str) -> list[str]:
        ok(capsys, ["replay", str(events), "--ledger", url])
        return ["--ledger", url]

    if request.param == "sqlite":
        yield filled(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
        return
    with fresh_database(request.getfixturevalue("postgres_url"), prefix="ledger") as url:
        yield filled(url)


def accounts_csv(path, payees, *, digit: str, verified_at: str) -> str:
    path.write_text(HEADER + "".join(f"{p},收款人{p[-4:]},62220210{digit}{zlib.crc32(p.encode()):010d},102651020012,{verified_at}\n" for p in payees),
                    encoding="utf-8")
    return str(path)


def ok(capsys, argv) -> str:
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def send(capsys, ledger, tmp_path, batch: str, day: str, *rates: str) -> dict[str, str]:
    """Approve (the maker refused first), export, and let the bank answer: the files by kind."""
    main(["payments", "approve", batch, "--as", "alice", *ledger])
    assert "alice proposed batch" in capsys.readouterr().err
    ok(capsys, ["payments", "approve", batch, "--as", "bob", *ledger])
    pain = tmp_path / f"{batch}.xml"
    ok(capsys, ["payments", "export", batch, "--format", "pain001", "--out", str(pain), "--execution-date", day, "--as", "carol", *ledger])
    ok(capsys, ["bank-sim", str(pain), "--out", str(tmp_path / "bank"), "--seed", "7", *rates])
    return {kind: str(tmp_path / "bank" / f"{batch}-{kind}.xml") for kind in ("pain002", "camt054", "camt053")}


def replay_books_only_the_void(capsys, ledger: list[str], events: str, voided: dict) -> None:
    """``subsidy replay`` of the events with the void appended, into the ledger that holds the rest:
    decide's clawback is all it books, and the payment's room is back under its caps."""
    def counts() -> tuple[dict[str, int], dict[str, int]]:
        with Ledger.open(ledger[1], timezone=TIMEZONE) as opened:
            with opened.engine.connect() as conn:
                rows = {table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
                        for table in ("ledger_decisions", "ledger_instructions", "ledger_rejections", "ledger_payment_voids")}
            return rows, {scope: cap["used"] for scope, cap in opened.cap_usage().items()}

    before, used_before = counts()
    ok(capsys, ["replay", events, *ledger])
    after, used_after = counts()
    assert {table: after[table] - before[table] for table in before} == {"ledger_decisions": 1, "ledger_instructions": 1, "ledger_rejections": 0,
                                                                        "ledger_payment_voids": 1}
    with Ledger.open(ledger[1], timezone=TIMEZONE) as opened:
        with opened.engine.connect() as conn:
            payment = json.loads(conn.execute(sa.text("SELECT body FROM ledger_instructions WHERE instruction_id = :i"), {"i": voided["instruction_id"]}).scalar_one())
    charged = [step["scope"] for step in payment["computation"]["caps"] if step["kind"] == "amount"]
    assert charged and all(used_before[scope] - used_after[scope] == parse_amount(voided["amount"]) for scope in charged)


def test_a_year_paid_from_batch_to_reconciled_statement(ledger, tmp_path, capsys, monkeypatch):
    payees = [uscc(9_100_000 + n) for n in range(PAYEES)]
    ok(capsys, ["payees", "import", accounts_csv(tmp_path / "accounts.csv", payees, digit="0", verified_at="2026-03-01T09:00:00+08:00"), *ledger])
    assert "PB000001 proposed by alice: 100 payment(s)" in ok(capsys, ["payments", "batch", "--as", "alice", *ledger])
    first = send(capsys, ledger, tmp_path, "PB000001", "2026-04-01", "--reject-rate", "0.01", "--return-rate", "0.02")

    # a file naming a payment never sent, and one with another amount: one line each, nothing booked
    sent = read_answers(open(first["camt054"], "rb").read()).answers
    bad = tmp_path / "bad-camt054.xml"
    bad.write_bytes(camt054("BAD-1", "2026-04-01T18:00:00+08:00", "1", [("0" * 32, 100, "2026-04-01", None), (sent[0].end_to_end_id, 1, "2026-04-01", None)]))
    assert main(["payments", "ingest", str(bad), *ledger]) == 1
    problems = capsys.readouterr().err.splitlines()
    assert len(problems) == 3 and "no payment was sent" in problems[0] and "differs from the" in problems[1] and "nothing of the file booked" in problems[2]

    assert "booked 99 accepted" in ok(capsys, ["payments", "ingest", first["pain002"], *ledger])
    assert "booked 2 returned, 99 settled" in ok(capsys, ["payments", "ingest", first["camt054"], *ledger])
    assert "nothing new; 101 already booked" in ok(capsys, ["payments", "ingest", first["camt054"], *ledger])  # the same file twice
    assert "all as the ledger booked them" in ok(capsys, ["payments", "reconcile", first["camt053"], *ledger])
    _, _, entries = read_statement(open(first["camt053"], "rb").read())
    differing = tmp_path / "differing-camt053.xml"
    differing.write_bytes(camt053("S-X", "2026-04-01T18:00:00+08:00", "1", "2026-04-01", 0,
                                  [(e.end_to_end_id, e.amount_fen + (1 if n == 0 else 0), e.booked_on, e.reason_code) for n, e in enumerate(entries[:-1])]))
    assert main(["payments", "reconcile", str(differing), *ledger]) == 1
    lines, err = capsys.readouterr()
    assert len(lines.splitlines()) == 2 and "2 difference(s)" in err and "not on the statement" in lines and "CNY on the statement," in lines

    status = json.loads(ok(capsys, ["payments", "status", "PB000001", "--json", *ledger]))
    assert {state: v["payments"] for state, v in status["batches"][0]["states"].items()} == {"settled": 97, "rejected": 1, "returned": 2}
    failed = status["rejected_or_returned"]
    assert sorted(f["state"] for f in failed) == ["rejected", "returned", "returned"] and all(f["reason_code"] for f in failed)

    # two payees give a corrected account; the third payment is voided; a settled one cannot be
    corrected, voided = failed[:2], failed[2]
    ok(capsys, ["payees", "import", accounts_csv(tmp_path / "corrected.csv", [f["payee_id"] for f in corrected], digit="9", verified_at="2026-04-03T09:00:00+08:00"), *ledger])
    settled_one = next(e for e in sent if e.end_to_end_id not in {f["end_to_end_id"] for f in failed})
    events = str(tmp_path / "events.jsonl")
    monkeypatch.delenv("SUBSIDY_BROKER", raising=False)
    assert main(["payments", "void", voided["instruction_id"], "--as", "dora", "--reason", "payee dissolved", *ledger]) == 2
    assert "say where the void goes: --broker HOST:PORT" in capsys.readouterr().err
    assert main(["payments", "void", settled_one.end_to_end_id, "--as", "dora", "--reason", "test", "--to", events, *ledger]) == 2
    assert "is settled (batch PB000001): only a payment not gone out" in capsys.readouterr().err
    assert "out of every batch and re-issue from now; appended to" in ok(capsys, ["payments", "void", voided["instruction_id"], "--as", "dora",
                                                                                 "--reason", "payee dissolved", "--to", events, *ledger])
    replay_books_only_the_void(capsys, ledger, events, voided)

    assert "PB000002 proposed by alice: 2 payment(s)" in ok(capsys, ["payments", "batch", "--as", "alice", *ledger])
    second = send(capsys, ledger, tmp_path, "PB000002", "2026-04-07", "--reject-rate", "0", "--return-rate", "0")
    resent = read_answers(open(second["pain002"], "rb").read()).answers
    assert sorted(a.end_to_end_id for a in resent) == sorted(end_to_end_id(f["instruction_id"], 1) for f in corrected)  # re-issue 1: …R1
    ok(capsys, ["payments", "ingest", second["pain002"], *ledger])
    ok(capsys, ["payments", "ingest", second["camt054"], *ledger])
    assert main(["payments", "reconcile", second["camt053"], *ledger]) == 0
    assert main(["payments", "reconcile", first["camt053"], *ledger]) == 0
    capsys.readouterr()
    assert main(["payments", "reconcile", str(bad).replace("bad-camt054", "missing"), *ledger]) == 2

    with Ledger.open(ledger[1], timezone=TIMEZONE) as opened:
        balances = opened.trial_balance()
        _, waiting, states = opened.payment_status()
        caps = opened.cap_usage()
        chain = opened.verify_chain()
    assert sum(balances.values()) == 0  # to the fen
    assert Counter(states.values()) == {"settled": PAYEES - 1, "voided": 1} and not waiting
    assert all(cap["used"] <= cap["limit"] for cap in caps.values())
    assert all(balance == 0 for account, balance in balances.items() if account.startswith("payable:"))
    assert chain == []


@pytest.mark.integration
def test_a_generated_year_paid_to_reconciled_statements_on_postgresql(small_year, postgres_url, tmp_path, capsys):
    """The issue's end-to-end run on a generated year (tests/cli/conftest.py): replayed into
    PostgreSQL, paid with 1 % rejections and 2 % returns, corrected or voided, re-issued: every
    payment ends settled, voided, netted or held, the books balanced and no cap crossed."""
    path, _ = small_year
    with fresh_database(postgres_url, prefix="ledger") as url:
        ledger = ["--ledger", url]
        ok(capsys, ["replay", str(path), *ledger])
        with Ledger.open(url, timezone=TIMEZONE) as opened:
            with opened.engine.connect() as conn:
                payees = [p for (p,) in conn.exec_driver_sql("SELECT DISTINCT payee_id FROM ledger_instructions WHERE kind = 'payment' ORDER BY payee_id")]
        ok(capsys, ["payees", "import", accounts_csv(tmp_path / "accounts.csv", payees, digit="0", verified_at="2026-03-01T09:00:00+08:00"), *ledger])
        if "two approvers" in ok(capsys, ["payments", "batch", "--as", "alice", *ledger]):  # a year's batch is over 10,000,000.00
            assert "approval 1 of 2 recorded (erin)" in ok(capsys, ["payments", "approve", "PB000001", "--as", "erin", *ledger])
        first = send(capsys, ledger, tmp_path, "PB000001", "2027-01-05", "--reject-rate", "0.01", "--return-rate", "0.02")
        ok(capsys, ["payments", "ingest", first["pain002"], *ledger])
        ok(capsys, ["payments", "ingest", first["camt054"], *ledger])
        assert main(["payments", "reconcile", first["camt053"], *ledger]) == 0
        capsys.readouterr()

        failed = json.loads(ok(capsys, ["payments", "status", "--json", *ledger]))["rejected_or_returned"]
        assert {f["state"] for f in failed} == {"rejected", "returned"}
        corrected, voided = failed[:-1], failed[-1]
        ok(capsys, ["payees", "import", accounts_csv(tmp_path / "corrected.csv", sorted({f["payee_id"] for f in corrected}), digit="9",
                                                     verified_at="2027-01-06T09:00:00+08:00"), *ledger])
        events = str(tmp_path / "events.jsonl")
        shutil.copy(path, events)
        ok(capsys, ["payments", "void", voided["instruction_id"], "--as", "dora", "--reason", "payee dissolved", "--to", events, *ledger])
        replay_books_only_the_void(capsys, ledger, events, voided)
        ok(capsys, ["payments", "batch", "--as", "alice", *ledger])
        second = send(capsys, ledger, tmp_path, "PB000002", "2027-01-08", "--reject-rate", "0", "--return-rate", "0")
        assert len(read_answers(open(second["pain002"], "rb").read()).answers) == len(corrected)
        ok(capsys, ["payments", "ingest", second["pain002"], *ledger])
        ok(capsys, ["payments", "ingest", second["camt054"], *ledger])
        assert main(["payments", "reconcile", second["camt053"], *ledger]) == 0

        with Ledger.open(url, timezone=TIMEZONE) as opened:
            balances = opened.trial_balance()
            _, waiting, states = opened.payment_status()
            caps = opened.cap_usage()
            chain = opened.verify_chain()
            unbatched = [a.payments for a in opened.awaiting_account()]
            with opened.engine.connect() as conn:
                payments = set(conn.exec_driver_sql("SELECT instruction_id FROM ledger_instructions WHERE kind = 'payment'").scalars())
                netted_whole = set(conn.exec_driver_sql("SELECT payment_id FROM ledger_offsets").scalars()) - states.keys()
                voids = set(conn.exec_driver_sql("SELECT instruction_id FROM ledger_payment_voids").scalars())
            held = {h["instruction_id"] for h in opened.holds()}
        # every payment ends in one state: paid (settled), voided, netted whole against a clawback, or held (listed)
        assert payments == states.keys() | netted_whole | held and not held & states.keys() and len(states) > 1000
        assert sum(balances.values()) == 0 and chain == [] and not waiting and not unbatched
        # voided: the operator's, and the year's own (subsidy generate voids about 0.5 % of purchases and invoices)
        assert set(states.values()) == {"settled", "voided"} and voided["instruction_id"] in voids and len(voids) > 1
        assert {iid for iid, state in states.items() if state == "voided"} == voids
        assert all(cap["used"] <= cap["limit"] for cap in caps.values())


def test_a_void_is_published_keyed_by_its_payee_and_sent_again_the_same_when_the_broker_did_not_acknowledge(tmp_path, capsys, monkeypatch):
    """``payments void --broker``: the message intake reads as a void of the payment, keyed by the
    payee; a broker that does not acknowledge is one line, the request stays, and a second run
    sends the same message."""
    from rules.intake import intake
    from rules.policy import load_policy
    from streams.tools import publish

    events = tmp_path / "events.jsonl"
    topic, value = purchase("e1", 1, "1000.00", provider=9_100_000)
    events.write_text(json.dumps({"topic": topic, "value": value}, ensure_ascii=False) + "\n", encoding="utf-8")
    ledger = ["--ledger", f"sqlite:///{tmp_path / 'ledger.sqlite'}"]
    ok(capsys, ["replay", str(events), *ledger])
    with Ledger.open(ledger[1], timezone=TIMEZONE) as opened:
        with opened.engine.connect() as conn:
            (payment,) = conn.exec_driver_sql("SELECT instruction_id FROM ledger_instructions").scalars()
    sent: list[tuple[str, bytes | None, bytes]] = []

    def refused(path, bootstrap, **_):
        raise publish.NotAcknowledged("1 of 1 messages were not acknowledged")

    def acknowledged(path, bootstrap, **_):
        with open(path, "rb") as lines:
            sent.extend(publish.iter_messages(lines))
        return len(sent)

    void = ["payments", "void", payment, "--as", "dora", "--reason", "payee dissolved", "--broker", "127.0.0.1:1", *ledger]
    monkeypatch.setattr(publish, "publish_file", refused)
    assert main(void) == 2
    assert "void of payment" in capsys.readouterr().err
    monkeypatch.setattr(publish, "publish_file", acknowledged)
    assert "already, sent again" in ok(capsys, void)
    assert "published to payment-voids on 127.0.0.1:1" in ok(capsys, void)
    (topic, key, raw), again = sent
    assert again == sent[0] and (topic, key) == ("payment-voids", uscc(9_100_000).encode())
    (claim,) = intake(topic, raw, load_policy())
    assert claim.voids is not None and (claim.voids["instruction_id"], claim.voids["event_id"], claim.voids["operator"]) == (payment, "e1", "dora")
