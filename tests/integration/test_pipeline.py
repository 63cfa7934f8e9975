"""The streaming pipeline against real parts: a Kafka-protocol broker started here, real
PostgreSQL for the ledger, worker processes that are killed with SIGKILL, and an upstream
producer that is not ours (kafka-python; kcat too where installed).

Completion is read from the ledger (every input decided or rejected), never from broker
offsets. Totals are compared with the pure replay of the same file to the fen.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pipeline_support import alive_check, assert_ledger_equals_replay, assert_sound, mutate, wait_for_progress
from rules.money import parse_amount
from rules.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from sinks.ledger import Ledger
from streams.local import LocalPipeline
from streams.tools.publish import iter_messages, publish_file
from streams.tools.verify import (
    accounted,
    expected_from_file,
    state_differs_from_changelog,
    wait_until_accounted,
)
from subsidy.cli import main as subsidy_main
from subsidy.generate import generate_file

pytestmark = pytest.mark.integration

YEAR = 2026


@pytest.fixture
def pipeline(kafka_bootstrap, ledger_url, tmp_path):
    started: list[LocalPipeline] = []

    def make(workers: int = 1, partitions: int = 4, policy_path: str | None = None) -> LocalPipeline:
        p = LocalPipeline(workers=workers, partitions=partitions, ledger_url=ledger_url, bootstrap=kafka_bootstrap,
                          kafka="apache", workdir=tmp_path / "run", app_id="subsidy-test", policy_path=policy_path)
        started.append(p)
        return p.start()

    yield make
    for p in started:
        p.stop()


def _events(tmp_path: Path, events: int, seed: int, enterprises: int = 150, policy: Policy | None = None, void_rate: float = 0.0) -> Path:
    path = tmp_path / f"events-{seed}.jsonl"
    generate_file(path, YEAR, seed=seed, enterprises=enterprises, events=events, policy=policy, void_rate=void_rate)
    return path


def _voids_paid_out_again(instructions: list[dict], clause_id: str, scope: str) -> list[tuple[dict, dict]]:
    """(void, payment) for each void of ``clause_id`` that came when its budget ``scope`` had no room
    left, and whose room, exactly, the clause's next claim was paid from. The ledger books a clause's
    instructions in decision order, so walking them in journal order follows the budget's room."""
    room: int | None = None  # what the budget has left, once a payment said
    void: dict | None = None
    pairs = []
    for i in instructions:
        if i["clause_id"] != clause_id:
            continue
        if i["kind"] == "payment":
            step = next(s for s in i["computation"]["caps"] if s["scope"] == scope)
            if void is not None and parse_amount(step["room_before"]) == -parse_amount(void["amount"]):
                pairs.append((void, i))
            void, room = None, parse_amount(step["room_before"]) - parse_amount(i["amount"])
        elif scope in i["computation"]["caps_released"]:
            void = i if room == 0 and "void" in i["computation"] else None
            room = None if room is None else room - parse_amount(i["amount"])
    return pairs


def _kcat_publish(bootstrap: str, path: Path) -> int:
    """Publish with Debian's kcat, an upstream client that is not ours, one process per topic (key
    and value separated by a delimiter no message holds). Fails, never falls back, when kcat is
    missing (`make test` installs it) or cannot talk to the broker."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed: run `make test` (it installs Debian's kcat) or apt-get install kcat"
    by_topic: dict[str, list[tuple[bytes | None, bytes]]] = {}
    with open(path, "rb") as f:
        for topic, key, raw in iter_messages(f):
            by_topic.setdefault(topic, []).append((key, raw))
    sent = 0
    for topic, messages in by_topic.items():
        payload = b"".join((key or b"") + b"\x1f" + raw.replace(b"\n", b" ") + b"\n" for key, raw in messages)
        # murmur2, as Java clients and kafka-python partition: librdkafka's own default (CRC32) would put a
        # payee's refund on another partition than its purchase, where it can overtake it
        done = subprocess.run([kcat, "-P", "-b", bootstrap, "-t", topic, "-K", "\x1f", "-z", "none",
                               "-X", "partitioner=murmur2_random"], input=payload,
                              capture_output=True, timeout=60)
        assert done.returncode == 0, f"kcat could not publish to {bootstrap}: {done.stderr.decode(errors='replace')}"
        sent += len(messages)
    return sent


def test_generated_year_matches_replay(pipeline, tmp_path, capsys):
    path = _events(tmp_path, 3000, seed=11)
    expected = expected_from_file(str(path))
    p = pipeline(workers=1)
    started = time.monotonic()
    # half the inputs from kcat, half from kafka-python: two upstream clients that are not ours
    lines = path.read_text(encoding="utf-8").splitlines()
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("\n".join(lines[: len(lines) // 2]) + "\n", encoding="utf-8")
    second.write_text("\n".join(lines[len(lines) // 2 :]) + "\n", encoding="utf-8")
    # order within each topic is kept: kcat sends the first half before kafka-python the second
    assert _kcat_publish(p.bootstrap, first) + publish_file(str(second), p.bootstrap) == expected.inputs
    with Ledger.open(p.ledger_url) as ledger:
        assert wait_until_accounted(ledger, expected, timeout=180, check=alive_check(p)), accounted(ledger, expected)
        assert_ledger_equals_replay(ledger, expected)
        clawback = ledger.instructions(kind="clawback")[0]
    print(f"\n{expected.inputs} inputs in {time.monotonic() - started:.1f}s")

    # `subsidy trace` follows a clawback and its payment through every topic of the pipeline
    assert subsidy_main(["trace", clawback["instruction_id"], clawback["corrects"], "--broker", p.bootstrap, "--app-id", p.app_id]) == 0
    lines = capsys.readouterr().out.splitlines()
    for event_id in clawback["event_ids"]:
        assert any(line.startswith("  subsidy-claims[") and f"claim {event_id} " in line for line in lines), lines
    for topic in ("subsidy-test-subsidy-state-changelog", "disbursement-instructions", "subsidy-decisions"):
        assert any(line.startswith(f"  {topic}[") for line in lines), (topic, lines)
    assert any(f"clawback {clawback['instruction_id'][:12]}" in line for line in lines), lines
    assert any(f"payment {clawback['corrects'][:12]}" in line for line in lines), lines
    committed = lines.index(f"committed offsets of group {p.app_id} (next record to read):")
    assert any(line.startswith("  subsidy-claims[") for line in lines[committed:]), lines

    # the public rejection topic carries the original bytes, topic, partition, offset and a reason
    from kafka import KafkaConsumer

    consumer = KafkaConsumer("subsidy-rejections", bootstrap_servers=p.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000, group_id=None)
    records = [json.loads(m.value) for m in consumer]
    consumer.close()
    assert len({r["rejection_id"] for r in records}) == expected.rejections
    for r in records:
        assert r["topic"] and r["partition"] is not None and r["offset"] is not None and r["reason"]
        assert base64.b64decode(r["original"]) or r["original"] == ""


def test_kcat_publishes_the_contracts_examples_and_the_ledger_books_them(pipeline, tmp_path):
    examples = Path(__file__).resolve().parents[2] / "schemas" / "examples"
    path = tmp_path / "examples.jsonl"
    lines = []
    for topic in ("compute-purchases", "model-invoices", "investment-closings", "award-announcements"):
        message = json.loads((examples / f"{topic}.json").read_text(encoding="utf-8"))
        lines.append(json.dumps({"topic": topic, "value": message}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = expected_from_file(str(path))
    assert expected.rejections == 0 and expected.instruction_ids
    p = pipeline(workers=1)
    assert _kcat_publish(p.bootstrap, path) == 4
    with Ledger.open(p.ledger_url) as ledger:
        assert wait_until_accounted(ledger, expected, timeout=120, check=alive_check(p)), accounted(ledger, expected)
        assert_ledger_equals_replay(ledger, expected)


def test_duplicates_reordering_and_bad_messages(pipeline, tmp_path):
    source = _events(tmp_path, 2000, seed=12)
    path = tmp_path / "mixed.jsonl"
    info = mutate(source, path)
    expected = expected_from_file(str(path))
    assert expected.summary.duplicates > 0 and expected.rejections >= info["bad"]
    p = pipeline(workers=1)
    assert publish_file(str(path), p.bootstrap) == info["lines"]
    with Ledger.open(p.ledger_url) as ledger:
        assert wait_until_accounted(ledger, expected, timeout=180, check=alive_check(p)), accounted(ledger, expected)
        # every input decided or rejected, nothing paid twice, no cap exceeded; totals may
        # legitimately differ from a replay in file order (count caps pay the first arrivals)
        assert_sound(ledger, expected)


def test_an_upstream_writing_in_transactions(pipeline, tmp_path):
    """Each transaction leaves a commit marker in every partition it wrote, an offset no consumer
    is handed. The worker reads each such gap back from the broker (streams/input_gap_check.py),
    finds no record there and goes on: it never stops, and the ledger equals the replay."""
    import urllib.request

    from kafka import KafkaProducer

    from console.promtext import parse as parse_metrics

    path = _events(tmp_path, 1200, seed=15)
    expected = expected_from_file(str(path))
    p = pipeline(workers=1)
    upstream = KafkaProducer(bootstrap_servers=p.bootstrap, transactional_id="billing-and-review", acks="all")
    upstream.init_transactions()
    with open(path, "rb") as source:
        messages = list(iter_messages(source))
    for start in range(0, len(messages), 40):
        upstream.begin_transaction()
        for topic, key, raw in messages[start:start + 40]:
            upstream.send(topic, key=key, value=raw)
        upstream.commit_transaction()
    upstream.close()

    def never_stopped() -> None:
        dead = p.dead_workers()
        assert not dead, p.log_tail(dead[0])

    with Ledger.open(p.ledger_url) as ledger:
        assert wait_until_accounted(ledger, expected, timeout=180, check=never_stopped), accounted(ledger, expected)
        assert_ledger_equals_replay(ledger, expected)
    page = urllib.request.urlopen(f"http://127.0.0.1:{p.workers[0].web_port}/metrics", timeout=5).read().decode()
    markers = sum(sample.value for sample in parse_metrics(page)["subsidy_input_gap_offsets_total"].samples)
    assert markers >= len(messages) // 40  # every transaction's markers were checked and taken


def test_kill_9_worker_repeatedly(pipeline, tmp_path):
    # with voids: a void read again after a kill before its purchase must not reach the ledger first
    path = _events(tmp_path, 6000, seed=13, enterprises=200, void_rate=0.005)
    expected = expected_from_file(str(path))
    total = len(expected.decision_ids) + expected.rejections
    p = pipeline(workers=1)
    assert publish_file(str(path), p.bootstrap) == expected.inputs
    rng = random.Random(13)
    kills = 0
    with Ledger.open(p.ledger_url) as ledger:
        for fraction in (0.1, 0.3, 0.5, 0.7):  # early enough that a quick restart cannot finish the run first
            target = int(total * (fraction + rng.uniform(0, 0.08)))
            done = wait_for_progress(ledger, expected, target, timeout=120, check=alive_check(p))
            if done >= total:
                break
            time.sleep(rng.uniform(0, 0.5))  # a random moment, mid-batch
            victim = p.workers[0]
            p.kill_worker(victim)  # SIGKILL
            kills += 1
            # restarted on its RocksDB state (as from a volume) or, every other time, on none
            p.start_worker(state_of=victim if kills % 2 else None)
        assert kills >= 3, f"the run finished before 3 kills ({kills})"
        assert wait_until_accounted(ledger, expected, timeout=180, check=alive_check(p)), accounted(ledger, expected)
        assert_ledger_equals_replay(ledger, expected)
    for worker in list(p.workers):
        p.stop_worker(worker)
    assert not state_differs_from_changelog(p, p.bootstrap)


def test_two_workers_with_rebalance(pipeline, tmp_path):
    path = _events(tmp_path, 5000, seed=14, enterprises=200)
    expected = expected_from_file(str(path))
    total = len(expected.decision_ids) + expected.rejections
    p = pipeline(workers=1)
    assert publish_file(str(path), p.bootstrap) == expected.inputs
    with Ledger.open(p.ledger_url) as ledger:
        wait_for_progress(ledger, expected, int(total * 0.2), timeout=120, check=alive_check(p))
        second = p.start_worker()  # join: partitions move to it mid-run
        wait_for_progress(ledger, expected, int(total * 0.55), timeout=120, check=alive_check(p))
        first = p.workers[0]
        assert first is not second
        p.stop_worker(first)  # leave: its partitions move back to the second worker
        assert wait_until_accounted(ledger, expected, timeout=180, check=alive_check(p)), accounted(ledger, expected)
        assert_ledger_equals_replay(ledger, expected)


@pytest.mark.parametrize("broker", ["apache", "tansu"])
def test_an_exhausted_budget_pays_the_same_claims_as_the_replay_through_kills(broker, request, ledger_url, tmp_path, capsys):
    """The compute-voucher budget cut to 300,000.00 (a data change): it runs out early in the run,
    refunds and operators' voids (2 % of payments, topic payment-voids) give room back, two workers
    decide and one is killed with SIGKILL mid-run, on either broker. Claims and voids take and give
    back the budget in event-time order, not arrival order, so who is paid is the replay's: the
    ledger equals it instruction by instruction, payee by payee, to the fen (`ledger reconcile
    --against` exits 0), and no cap is exceeded. The city's programme runs beside 成都高新区's
    (issue 28), with projects claimed twice: 就高不重复's supersessions and declines, and the
    combined compute cap, hold through the kill as the replay has them."""
    shipped = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    assert shipped.count('value: "100000000.00"') == 1
    small = tmp_path / "small-budget.yaml"
    small.write_text(shipped.replace('value: "100000000.00"', 'value: "300000.00"'), encoding="utf-8")
    policy_path = os.pathsep.join((str(small), str(DEFAULT_POLICY_PATH.parent / "chengdu-high-tech-zone-2025.yaml")))
    policy = load_policy(policy_path)
    path = _events(tmp_path, 4000, seed=15, enterprises=200, policy=policy, void_rate=0.02)
    expected = expected_from_file(str(path), policy)
    assert expected.totals["compute-voucher"][str(YEAR)] == 300_000_00, "the budget must bind in this run"
    total = len(expected.decision_ids) + expected.rejections
    bootstrap = request.getfixturevalue("kafka_bootstrap") if broker == "apache" else None  # tansu: started by the pipeline
    p = LocalPipeline(workers=2, partitions=4, ledger_url=ledger_url, bootstrap=bootstrap, kafka=broker,
                      workdir=tmp_path / "run", app_id="subsidy-test", policy_path=str(policy_path))
    try:
        p.start()
        assert publish_file(str(path), p.bootstrap) == expected.inputs
        with Ledger.open(p.ledger_url) as ledger:
            wait_for_progress(ledger, expected, int(total * 0.4), timeout=120, check=alive_check(p))
            p.kill_worker(p.workers[0])  # SIGKILL mid-run
            p.start_worker()
            assert wait_until_accounted(ledger, expected, timeout=180, check=alive_check(p)), accounted(ledger, expected)
            assert_ledger_equals_replay(ledger, expected)
            budget = '["cap", "compute-voucher", "programme-year", "2026"]'
            assert ledger.cap_usage()[budget]["used"] <= 300_000_00
            # a void while the budget had no room left, its room paid out again to the next claim
            assert _voids_paid_out_again(ledger.instructions(), "compute-voucher", budget), "no void gave room back under the exhausted budget"
            # a clawback of a refund of 0.00 is a supersession: a project funded again for more
            assert any(i["computation"]["refund"] == "0.00" for i in ledger.instructions(kind="clawback")), "no project was superseded in this run"
    finally:
        p.stop()
    capsys.readouterr()
    assert subsidy_main(["ledger", "reconcile", "--against", str(path), "--policy", policy_path, "--ledger", ledger_url]) == 0, capsys.readouterr()
