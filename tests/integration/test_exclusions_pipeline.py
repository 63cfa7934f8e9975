"""Payee exclusions through the pipeline on Apache Kafka: listings published before and after the
payments they cover hold the same payments, from the same days to the same days, as ``subsidy
replay`` of the same file into a SQLite ledger; a payee-accounts message read by the same
intake is stored as the replay stores it; and a payment-status message naming no payment sent is
a rejection in the ledger, as in the replay (a valid one: tests/ledger/test_bank_answers.py)."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from pipeline_support import alive_check, assert_ledger_equals_replay
from rules.policy import load_policy
from sinks.cli import main as ledger_main
from sinks.ledger import Ledger
from sinks.ledger.checkpoints import generate_key
from streams.local import LocalPipeline
from streams.tools.publish import publish_file
from streams.tools.verify import accounted, expected_from_file, wait_until_accounted
from subsidy.generate import generate_file
from subsidy.replay import replay

pytestmark = pytest.mark.integration


def exclusion(event_id: str, party: str, reference: str, starts: str, ends: str | None, occurred_at: str, source: str = "chengdu-credit-platform") -> str:
    value = {"event_id": event_id, "source": source, "occurred_at": occurred_at, "beneficiary": {"uscc": party, "name": "被执行人"},
             "list": "dishonest-judgment-debtor", "from": starts, "reference": reference, **({"to": ends} if ends else {})}
    return json.dumps({"topic": "payee-exclusions", "value": value}, ensure_ascii=False)


def effective(holds: list[dict]) -> list[tuple]:
    """What holds the money: a hold released on its own day (its listing corrected after the
    payment was booked) never kept it from being paid."""
    return sorted((h["instruction_id"], h["listed_party"], h["reference"], h["held_from"], h["released_on"]) for h in holds if h["released_on"] != h["held_from"])


def test_listings_before_and_after_their_payments_hold_what_replay_holds(kafka_bootstrap, ledger_url, tmp_path, monkeypatch, capsys):
    # the worker also signs the ledger's head (issue 27): checked against the ledger-checkpoints topic at the end
    generate_key(tmp_path / "checkpoint.pem")
    monkeypatch.setenv("SUBSIDY_CHECKPOINT_KEY", str(tmp_path / "checkpoint.pem"))
    monkeypatch.setenv("SUBSIDY_CHECKPOINT_EVERY_MINUTES", "0.02")
    year = tmp_path / "year.jsonl"
    generate_file(year, 2026, seed=21, enterprises=60, events=900)
    lines = year.read_text(encoding="utf-8").splitlines()
    values = [v for v in map(json.loads, lines) if "value" in v]  # not the malformed lines ("raw")
    provider = Counter(v["value"]["provider"]["uscc"] for v in values if v["topic"] == "compute-purchases").most_common(1)[0][0]
    buyer = Counter(v["value"]["beneficiary"]["uscc"] for v in values if v["topic"] == "model-invoices").most_common(1)[0][0]
    before = [exclusion("x1", provider, "川01执1号", "2026-03-01", "2026-05-31", "2026-03-01T09:00:00+08:00")]
    after = [
        exclusion("x2", buyer, "川01执2号", "2026-06-01", None, "2026-06-01T09:00:00+08:00"),
        exclusion("x3", buyer, "川01执2号", "2026-06-01", "2026-09-30", "2026-10-01T09:00:00+08:00"),  # ends x2's listing
        exclusion("x4", buyer, "川01执3号", "2026-06-01", None, "2026-06-01T09:00:00+08:00", source="scc-billing"),  # rejected
        json.dumps({"topic": "payee-accounts", "value": {"event_id": "a1", "source": "enterprise-registry", "occurred_at": "2026-02-20T16:05:00+08:00",
                    "beneficiary": {"uscc": provider, "name": "服务商"}, "account_name": "服务商", "account_number": "4402238109100012345",
                    "bank_code": "102651020012", "verified_at": "2026-02-20T16:04:31+08:00"}}, ensure_ascii=False),
        json.dumps({"topic": "payment-status", "value": {"event_id": "s1", "source": "bank-connector", "occurred_at": "2026-04-02T18:00:00+08:00",
                    "end_to_end_id": "0" * 32, "status": "settled"}}),
    ]
    path = tmp_path / "with-listings.jsonl"
    path.write_text("\n".join(before + lines + after) + "\n", encoding="utf-8")

    replayed = f"sqlite:///{tmp_path / 'replay.sqlite'}"
    policy = load_policy()
    with Ledger.open(replayed, timezone=policy.timezone) as ledger:
        summary = replay(path, policy, ledger)
        wanted = effective(ledger.holds(released=True))
        accounts = ledger.payee_accounts()
    assert summary.listings == 3 and summary.accounts == 1 and set(accounts[0]) == {provider} and summary.rejected_by_code["unknown-source"] == 1
    assert (summary.statuses, summary.rejected_by_code["unknown-payment"]) == (0, 1)
    assert {h[1] for h in wanted} == {provider, buyer}, wanted  # both listings hold payments

    expected = expected_from_file(str(path))
    pipeline = LocalPipeline(workers=1, partitions=4, ledger_url=ledger_url, bootstrap=kafka_bootstrap, kafka="apache",
                             workdir=tmp_path / "run", app_id="subsidy-test").start()
    try:
        assert publish_file(str(path), pipeline.bootstrap) == expected.inputs
        with Ledger.open(pipeline.ledger_url) as ledger:
            assert wait_until_accounted(ledger, expected, timeout=180, check=alive_check(pipeline)), accounted(ledger, expected)
            assert_ledger_equals_replay(ledger, expected)
            deadline = time.monotonic() + 30  # the last listings and the account are booked by intake, maybe after the last decision
            while (effective(ledger.holds(released=True)), ledger.payee_accounts()) != (wanted, accounts) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert effective(ledger.holds(released=True)) == wanted
            assert ledger.payee_accounts() == accounts
            with ledger.engine.connect() as conn:  # assert_sound counted it among the rejections
                assert conn.execute(sa.text("SELECT code FROM ledger_rejections WHERE topic = 'payment-status'")).scalars().all() == ["unknown-payment"]
        verify = ["ledger", "verify", "--ledger", pipeline.ledger_url, "--checkpoints", f"kafka://{pipeline.bootstrap}"]
        deadline = time.monotonic() + 30
        while True:
            code = ledger_main(verify)
            out, err = capsys.readouterr()
            if code == 0 and "are not covered" not in out:  # a checkpoint of the last head: the worker's timer asks every 5 s
                break
            assert code == 0 and time.monotonic() < deadline, (out, err)
            time.sleep(2)
        assert "verified: " in err and "checkpoint(s)" in err
    finally:
        pipeline.stop()
