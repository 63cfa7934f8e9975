"""The stages (streams/stages.py) driven with plain records and a dict for the state: no Kafka, no Faust."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from importlib import resources
from typing import Any

import pytest

from rules.engine import Engine
from rules.policy import load_policy
from streams.own_records import PROGRESS_KEY, progress_record, read_changelog_record
from streams.stage_outputs import StageOutputs
from streams.stages import DecideStage, IntakeStage, Record, StageBatch, StageFailed
from streams.state import PartitionView, compact_json
from streams.topics import CLAIMS_TOPIC, DEAD_LETTERS_TOPIC, DECISIONS_TOPIC, INSTRUCTIONS_TOPIC, REJECTIONS_TOPIC

POLICY = load_policy()
AT = dt.datetime(2026, 3, 2, 4, 0, tzinfo=dt.timezone.utc)
CHANGELOG = "state-changelog"
PURCHASE = resources.files("schemas.examples").joinpath("compute-purchases.json").read_bytes()


class DictState:
    """The running state as the decide stage sees TxnTable: one dict per partition, and each
    claim's writes queued as one changelog record."""

    def __init__(self) -> None:
        self.partitions: dict[int, dict[str, Any]] = {}

    def reader(self, partition: int) -> PartitionView:
        return PartitionView(self.partitions.setdefault(partition, {}).get)

    def apply_writes(self, partition: int, txn_key: str, writes: dict[str, Any], outputs: StageOutputs) -> None:
        self.partitions.setdefault(partition, {}).update(writes)
        outputs.put(CHANGELOG, txn_key.encode(), compact_json({"w": writes}), partition)


def every_claim_on(partition: int):
    return lambda key: partition


def sent(batch: StageBatch, topic: str) -> list[tuple[bytes | None, bytes]]:
    return [(key, value) for t, key, value, _, _ in batch.outputs.queued if t == topic]


def intake_record(value: bytes | None, offset: int = 0, key: bytes | None = b"k-1") -> Record:
    return Record("compute-purchases", 0, offset, key, value, 1_772_417_700.0)


INPUTS = [("compute-purchases", 0)]


def progress(moment: dt.datetime, offset: int) -> Record:
    """intake's word that it has read every input up to ``moment``."""
    return Record(CLAIMS_TOPIC, 0, offset, PROGRESS_KEY, progress_record({source: moment.isoformat() for source in INPUTS}), None)


def claims_of(batch: StageBatch, first_offset: int = 0, then_progress_to: dt.datetime | None = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)) -> list[Record]:
    """intake's claims as the decide stage reads them from subsidy-claims (partition 0), followed by
    a progress record (by default far enough for every claim's turn to have come)."""
    claims = [Record(CLAIMS_TOPIC, 0, first_offset + n, key, value, 1_772_417_701.0)
              for n, (key, value) in enumerate((k, v) for k, v in sent(batch, CLAIMS_TOPIC) if k != PROGRESS_KEY)]
    return claims + ([progress(then_progress_to, first_offset + len(claims))] if then_progress_to else [])


def decide_stage(state: DictState) -> DecideStage:
    return DecideStage(POLICY, state, every_claim_on(0), INPUTS, clock=lambda: AT)


@pytest.fixture
def stages():
    state = DictState()
    # the purchases here are dated days after the example's broker time: no clock-skew check
    return IntakeStage(POLICY, 1, clock=lambda: AT, check_clock_skew=False), decide_stage(state), state


def test_an_input_becomes_claims_keyed_by_their_clauses_claims_key_and_nothing_to_book(stages):
    intake, _, _ = stages
    batch = intake.take([intake_record(PURCHASE)])
    *claims, (progress_key, progress_value) = sent(batch, CLAIMS_TOPIC)
    assert claims and len(batch.outputs) == len(claims) + 1
    assert progress_key == PROGRESS_KEY and json.loads(progress_value) == {"progress": {"compute-purchases": {"0": "2026-03-02T10:15:00+08:00"}}}
    for key, value in claims:
        record = json.loads(value)
        assert key == POLICY.claims_key(record["claim"]["clause_id"]).encode()
        assert record["origin"]["topic"] == "compute-purchases" and record["ts"] == 1_772_417_700.0
    assert not batch.to_book()


def test_an_unreadable_input_becomes_a_rejection_keyed_like_it_the_same_at_each_redelivery(stages):
    intake, _, _ = stages
    first, again = (intake.take([intake_record(b"{not json", offset=7)]) for _ in range(2))
    assert [key for key, _ in sent(first, REJECTIONS_TOPIC)] == [b"k-1"]
    assert first.outputs.queued == again.outputs.queued  # same id, same bytes
    (rejection,) = first.rejections
    assert rejection["code"] == "malformed-json" and rejection["offset"] == 7
    assert first.to_book() and not first.decisions and first.stamps == [1_772_417_700.0]


LISTING = resources.files("schemas.examples").joinpath("payee-exclusions.json").read_bytes()


def test_a_listing_is_booked_with_the_batch_and_makes_no_claim_nor_progress(stages):
    intake, _, _ = stages
    bad = json.dumps({**json.loads(LISTING), "event_id": "x2", "source": "scc-billing"}).encode()
    batch = intake.take([Record("payee-exclusions", 0, 0, b"k-1", LISTING, 1_772_417_700.0), Record("payee-exclusions", 0, 1, b"k-1", bad, 1_772_417_700.0)])
    (listing,) = batch.listings
    assert listing.payee_id == json.loads(LISTING)["beneficiary"]["uscc"] and listing.event_id == json.loads(LISTING)["event_id"]
    (rejection,) = batch.rejections  # a bad listing is rejected like any input
    assert rejection["code"] == "unknown-source" and rejection["topic"] == "payee-exclusions" and rejection["offset"] == 1
    assert not sent(batch, CLAIMS_TOPIC) and not intake.read_up_to  # decide's watermark does not wait for it
    assert batch.to_book()


ACCOUNT = resources.files("schemas.examples").joinpath("payee-accounts.json").read_bytes()


def test_an_account_is_booked_with_the_batch_and_makes_no_claim_nor_progress(stages):
    intake, _, _ = stages
    bad = json.dumps({**json.loads(ACCOUNT), "event_id": "a2", "bank_code": "1026"}).encode()
    batch = intake.take([Record("payee-accounts", 0, 0, b"k-1", ACCOUNT, 1_772_417_700.0), Record("payee-accounts", 0, 1, b"k-1", bad, 1_772_417_700.0)])
    (account,) = batch.accounts  # as `subsidy payees import` stores one: the verification time in UTC
    assert (account["payee_id"], account["bank_code"], account["verified_at"], account["revoked"]) == ("91510107MA6CB2K44T", "102651020012", "2026-02-20T08:04:31+00:00", False)
    (rejection,) = batch.rejections  # a bad account is rejected like any input
    assert rejection["topic"] == "payee-accounts" and rejection["offset"] == 1 and "bank_code" in rejection["reason"]
    assert not sent(batch, CLAIMS_TOPIC) and not intake.read_up_to and batch.to_book()


STATUS = resources.files("schemas.examples").joinpath("payment-status.json").read_bytes()


def status_record(value: bytes, offset: int) -> Record:
    return Record("payment-status", 0, offset, json.loads(STATUS)["end_to_end_id"].encode(), value, 1_772_417_700.0)


def test_a_payment_status_is_for_the_ledger_to_judge_and_makes_no_claim_nor_progress(stages):
    intake, _, _ = stages
    bad = json.dumps({**json.loads(STATUS), "event_id": "s2", "reason_code": None}).encode()  # returned, with no reason
    stranger = json.dumps({**json.loads(STATUS), "event_id": "s3", "source": "mallory", "status": "settled"}).encode()
    batch = intake.take([status_record(STATUS, 0), status_record(bad, 1), status_record(stranger, 2)])
    (status,) = batch.statuses
    assert (status.message["status"], status.amount_fen, status.key) == ("returned", 12_000_000, b"8f14e45fceea167a5a36dedd4bea2543")
    refused = status.reject("unknown-payment", "no payment was sent with this EndToEndId")  # what the ledger does with a misfit
    assert (refused["rejection_id"], refused["topic"], refused["offset"], refused["rejected_at"]) == (status.rejection_id, "payment-status", 0, AT.isoformat())
    rejection, unlisted = batch.rejections  # a bad message is rejected by intake, like any input
    assert rejection["offset"] == 1 and "reason_code" in rejection["reason"]
    # only the policy's sources may say a payment was settled or returned
    assert (unlisted["offset"], unlisted["code"]) == (2, "unknown-source") and "'mallory' may not publish to payment-status" in unlisted["reason"]
    assert not sent(batch, CLAIMS_TOPIC) and not intake.read_up_to and batch.to_book()


def test_the_checkpoint_publishes_the_rejection_of_a_status_the_ledger_refused_once_booked(stages, tmp_path, monkeypatch):
    from sinks.ledger import Ledger
    from streams.checkpoint import Checkpoint

    intake, _, _ = stages
    commit = Commit(monkeypatch)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    checkpoint = Checkpoint(lambda: None, url, POLICY.timezone)
    records = [status_record(STATUS, 0), status_record(b"{", 1)]
    batches = []

    async def commit_twice() -> None:
        await checkpoint.open()
        for _ in range(2):  # the second time a redelivery: the same rejections, booked once
            batches.append(intake.take(records))
            await checkpoint.commit("intake", batches[-1])

    asyncio.run(commit_twice())
    # intake's rejection of the bad bytes, then the ledger's of the status no payment was sent for
    assert commit.steps == ["delivered 1", "delivered 1"] * 2 and commit.exits == []
    assert [r["code"] for r in batches[0].refused_statuses] == ["unknown-payment"] and batches[1].refused_statuses == batches[0].refused_statuses
    with Ledger.open(url, timezone=POLICY.timezone) as ledger:
        assert {kind: n for kind, n in ledger.counts().items() if n} == {"rejections": 2}


def test_a_claim_is_decided_its_state_writes_queued_ahead_of_its_outputs(stages):
    intake, decide, state = stages
    batch = decide.take(claims_of(intake.take([intake_record(PURCHASE)])))
    topics = [topic for topic, *_ in batch.outputs.queued]
    assert topics[0] == CHANGELOG and DECISIONS_TOPIC in topics and INSTRUCTIONS_TOPIC in topics
    assert batch.decisions and batch.instructions and batch.fresh_instructions == batch.instructions
    assert [json.loads(value) for _, value in sent(batch, DECISIONS_TOPIC)] == [d.to_wire() for d in batch.decisions]
    assert all(key == d.payee.id.encode() for (key, _), d in zip(sent(batch, DECISIONS_TOPIC), batch.decisions))
    (changelog,) = sent(batch, CHANGELOG)
    assert read_changelog_record(changelog[1]).items() <= state.partitions[0].items()


def test_a_duplicate_claim_re_emits_the_stored_outputs_byte_for_byte_and_writes_nothing(stages):
    intake, decide, state = stages
    claims = claims_of(intake.take([intake_record(PURCHASE)]))
    first = decide.take(claims)
    stored = dict(state.partitions[0])
    again = decide.take(claims_of(intake.take([intake_record(PURCHASE)]), first_offset=len(claims)))
    assert sent(again, DECISIONS_TOPIC) == sent(first, DECISIONS_TOPIC)
    assert sent(again, INSTRUCTIONS_TOPIC) == sent(first, INSTRUCTIONS_TOPIC)
    assert again.decisions == first.decisions and again.instructions == first.instructions
    assert not sent(again, CHANGELOG) and state.partitions[0] == stored
    assert again.fresh_instructions == []  # not counted as granted twice


def test_later_claims_of_a_batch_see_the_state_the_earlier_ones_left(stages):
    """Two claims of one batch against the same caps: the second is decided after the first's writes."""
    intake, decide, _ = stages
    second_input = PURCHASE.replace(b"scc-bill-2026-03-000184", b"scc-bill-2026-03-000185").replace(
        b"SCC-INV-2026-03-000184", b"SCC-INV-2026-03-000185")
    claims = claims_of(intake.take([intake_record(PURCHASE), intake_record(second_input, offset=1)]))
    together = decide.take(claims)
    programme_cap = '["cap", "compute-voucher", "programme-year", "2026"]'
    charged = [read_changelog_record(value)[programme_cap] for _, value in sent(together, CHANGELOG)]
    assert charged == [{"amount": 75_000_000, "count": 1}, {"amount": 150_000_000, "count": 2}]  # fen
    one_by_one = decide_stage(DictState())
    apart = [one_by_one.take([claim]) for claim in claims]
    assert together.outputs.queued == [record for batch in apart for record in batch.outputs.queued]


@pytest.mark.parametrize("value", [b"not a claim", b"{}", None])
def test_a_poison_claim_record_becomes_a_dead_letter_and_nothing_to_book(stages, value):
    _, decide, state = stages
    batch = decide.take([Record(CLAIMS_TOPIC, 0, 3, b"compute-voucher", value, 1_772_417_701.0)])
    ((key, letter),) = sent(batch, DEAD_LETTERS_TOPIC)
    assert key == b"compute-voucher" and len(batch.outputs) == 1
    letter_fields = json.loads(letter)
    assert (letter_fields["topic"], letter_fields["partition"], letter_fields["offset"]) == (CLAIMS_TOPIC, 0, 3)
    assert letter_fields["reason"].startswith("not a claim record of the intake agent: ")
    assert not batch.to_book() and state.partitions == {}


def test_a_claim_on_another_partition_than_its_clauses_is_a_dead_letter(stages):
    intake, _, state = stages
    claims = claims_of(intake.take([intake_record(PURCHASE)]))
    batch = DecideStage(POLICY, state, every_claim_on(1), INPUTS, clock=lambda: AT).take(claims[:1])
    ((_, letter),) = sent(batch, DEAD_LETTERS_TOPIC)
    assert "it is on partition 0, but intake puts clause" in json.loads(letter)["reason"]
    assert not batch.to_book()


def test_an_engine_failure_is_an_internal_error_rejection_of_the_input_with_no_state_written(stages, monkeypatch):
    intake, decide, state = stages
    claims = claims_of(intake.take([intake_record(PURCHASE, offset=5)]))

    def broken(self, claim, late_by=None):
        self.state["half-written"] = {"x": 1}
        raise ValueError("boom")

    monkeypatch.setattr(Engine, "decide", broken)
    batch = decide.take([claims[0], claims[-1]])  # a claim and the progress that releases it
    (rejection,) = batch.rejections
    assert rejection["code"] == "internal-error" and "ValueError: boom at test_stages.py:" in rejection["reason"]
    assert (rejection["topic"], rejection["offset"]) == ("compute-purchases", 5)
    assert sent(batch, REJECTIONS_TOPIC)[0][0] == b"k-1" and state.partitions.get(0, {}) == {}


def test_a_failure_outside_the_stages_handling_names_its_record(stages):
    intake, _, state = stages
    claims = claims_of(intake.take([intake_record(PURCHASE)]))

    def no_partitioner(key: bytes) -> int:
        raise RuntimeError("no metadata")

    with pytest.raises(StageFailed) as failed:
        DecideStage(POLICY, state, no_partitioner, INPUTS).take(claims)
    assert failed.value.record == claims[0] and isinstance(failed.value.cause, RuntimeError)


class Commit:
    """What a Checkpoint did with a batch, in order: the broker's acknowledgement of each record
    (StageOutputs.deliver, replaced), and the ledger's answer."""

    def __init__(self, monkeypatch) -> None:
        self.steps: list[str] = []
        self.exits: list[int] = []
        steps = self.steps

        async def deliver(outputs: StageOutputs, producer: Any) -> None:
            records, outputs.queued = outputs.queued, []
            steps.append(f"delivered {len(records)}")
            for offset, (topic, _, _, partition, on_delivered) in enumerate(records):
                if on_delivered is not None:
                    on_delivered((topic, partition), offset)

        monkeypatch.setattr(StageOutputs, "deliver", deliver)
        monkeypatch.setattr("streams.checkpoint.exit_now", self.exits.append)


def test_the_checkpoint_books_a_batch_once_and_delivers_it_before_returning(stages, tmp_path, monkeypatch):
    from sinks.ledger import Ledger
    from streams.checkpoint import Checkpoint

    intake, decide, _ = stages
    commit = Commit(monkeypatch)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    checkpoint = Checkpoint(lambda: None, url, POLICY.timezone)
    claims = claims_of(intake.take([intake_record(PURCHASE)]))
    batch = decide.take(claims)

    async def commit_twice() -> None:
        await checkpoint.open()
        await checkpoint.commit("decide", batch)
        await checkpoint.commit("decide", decide.take(claims))  # a redelivery: the same ids

    asyncio.run(commit_twice())
    assert commit.steps == ["delivered 3", "delivered 2"] and commit.exits == []
    with Ledger.open(url, timezone=POLICY.timezone) as ledger:
        assert {kind: n for kind, n in ledger.counts().items() if n} == {"decisions": 1, "instructions": 1}


def test_the_checkpoint_exits_unacknowledged_when_the_ledger_refuses_a_record(stages, tmp_path, monkeypatch):
    from streams.checkpoint import LEDGER_REFUSED_EXIT, Checkpoint

    intake, decide, _ = stages
    commit = Commit(monkeypatch)
    checkpoint = Checkpoint(lambda: None, f"sqlite:///{tmp_path / 'ledger.sqlite'}", POLICY.timezone)
    batch = decide.take(claims_of(intake.take([intake_record(PURCHASE)])))
    batch.decisions[0] = dataclasses.replace(batch.decisions[0], reason="another reason")  # the same id with other content

    async def commit_conflicting() -> None:
        await checkpoint.open()
        await checkpoint.commit("decide", decide.take(claims_of(intake.take([intake_record(PURCHASE)]))))
        with pytest.raises(Exception):
            await checkpoint.commit("decide", batch)

    asyncio.run(commit_conflicting())
    assert commit.exits == [LEDGER_REFUSED_EXIT]


def test_an_intake_failure_is_an_internal_error_rejection_of_the_input(stages, monkeypatch):
    intake, _, _ = stages

    def broken(topic: str, raw: bytes, policy: Any, received_at: Any = None) -> list:
        raise KeyError("vendor")

    monkeypatch.setattr("streams.stages.intake", broken)
    batch = intake.take([intake_record(PURCHASE, offset=9)])
    (rejection,) = batch.rejections
    assert rejection["code"] == "internal-error" and rejection["offset"] == 9
    assert rejection["reason"].startswith("the pipeline failed on this message (KeyError: 'vendor' at test_stages.py:")
    assert not sent(batch, CLAIMS_TOPIC)


def purchase(number: int, occurred_at: str) -> bytes:
    """The example purchase with another event id, invoice and time."""
    return (PURCHASE.replace(b"scc-bill-2026-03-000184", f"scc-bill-2026-03-{number:06d}".encode())
            .replace(b"SCC-INV-2026-03-000184", f"SCC-INV-2026-03-{number:06d}".encode())
            .replace(b"2026-03-02T10:15:00+08:00", occurred_at.encode()))


def test_claims_take_their_turn_by_when_they_happened_not_by_when_they_arrived(stages):
    intake, decide, _ = stages
    later = claims_of(intake.take([intake_record(purchase(2, "2026-03-05T09:00:00+08:00"))]), then_progress_to=None)
    first = decide.take(later)
    assert first.held == later and not first.decisions and not first.released  # kept unacknowledged
    earlier = claims_of(intake.take([intake_record(purchase(1, "2026-03-04T09:00:00+08:00"), offset=1)]), first_offset=len(later))
    second = decide.take(earlier)
    assert [d.event_id for d in second.decisions] == ["scc-bill-2026-03-000001", "scc-bill-2026-03-000002"]
    assert second.released == later and second.held == []  # the earlier batch's record, now to acknowledge
    assert all(d.late_by is None for d in second.decisions)


def test_a_claim_whose_turn_has_not_come_waits_for_the_progress_of_every_input(stages):
    intake, decide, _ = stages
    claims = claims_of(intake.take([intake_record(purchase(1, "2026-03-04T09:00:00+08:00"))]), then_progress_to=None)
    assert decide.take(claims).held == claims
    lateness = POLICY.clauses["compute-voucher"].allowed_lateness.at(dt.date(2026, 3, 4))
    not_yet = dt.datetime.fromisoformat("2026-03-04T09:00:00+08:00") + lateness
    assert not decide.take([progress(not_yet, 10)]).decisions  # released only strictly after its lateness
    assert decide.take([progress(not_yet + dt.timedelta(seconds=1), 11)]).released == claims
    assert decide.holding == 0


def test_a_claim_after_its_clause_released_a_later_one_is_decided_at_once_and_says_how_late(stages):
    intake, decide, _ = stages
    decide.take(claims_of(intake.take([intake_record(purchase(2, "2026-03-05T09:00:00+08:00"))])))
    late = claims_of(intake.take([intake_record(purchase(1, "2026-03-04T09:00:00+08:00"), offset=1)]), first_offset=2,
                     then_progress_to=None)
    batch = decide.take(late)
    assert not batch.held and [d.late_by for d in batch.decisions] == ["P1D"]


def test_held_claims_are_given_up_on_a_rebalance_and_decided_when_read_again(stages):
    intake, decide, _ = stages
    claims = claims_of(intake.take([intake_record(purchase(1, "2026-03-04T09:00:00+08:00"))]), then_progress_to=None)
    decide.take(claims)
    assert decide.forget() == claims and decide.holding == 0
    again = decide.take(claims + [progress(dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc), len(claims))])
    assert [d.event_id for d in again.decisions] == ["scc-bill-2026-03-000001"] and again.held == []


def test_a_void_is_a_claim_of_the_payments_clause_that_claws_it_back_and_makes_no_progress(stages):
    """An operator's void (payment-voids) goes through intake and decide as the purchase did: a
    claim keyed by its clause, held for its turn, then a clawback of the whole payment. The
    watermark does not wait for voids, so intake reports no progress of their topic."""
    intake, decide, _ = stages
    (paid,) = decide.take(claims_of(intake.take([intake_record(purchase(1, "2026-03-04T09:00:00+08:00"))]))).instructions
    example = json.loads(resources.files("schemas.examples").joinpath("payment-voids.json").read_bytes())
    void = {**example, "event_id": f"void-{paid.instruction_id}", "occurred_at": "2026-03-09T09:00:00+08:00",
            "payment": {**example["payment"], "instruction_id": paid.instruction_id, "event_id": "scc-bill-2026-03-000001"}}
    taken = intake.take([Record("payment-voids", 0, 0, paid.payee.id.encode(), json.dumps(void, ensure_ascii=False).encode(), 1_772_417_700.0)])
    (key, _), = sent(taken, CLAIMS_TOPIC)  # the claim, and no progress record
    assert key == POLICY.claims_key("compute-voucher").encode() and ("payment-voids", 0) not in intake.read_up_to
    batch = decide.take(claims_of(taken, first_offset=2))
    (clawback,) = batch.instructions
    assert (clawback.kind, clawback.amount, clawback.corrects) == ("clawback", -paid.amount, paid.instruction_id)
    assert not sent(batch, DEAD_LETTERS_TOPIC) and not batch.rejections


def test_an_unreadable_progress_record_is_a_dead_letter(stages):
    _, decide, _ = stages
    batch = decide.take([Record(CLAIMS_TOPIC, 0, 4, PROGRESS_KEY, b'{"progress": {"nope": {}}}', None)])
    ((_, letter),) = sent(batch, DEAD_LETTERS_TOPIC)
    assert "progress names 'nope'" in json.loads(letter)["reason"]


def test_an_input_dated_after_the_broker_received_it_beyond_the_clock_skew_is_rejected():
    intake = IntakeStage(POLICY, 1, clock=lambda: AT)
    early = Record("compute-purchases", 0, 9, b"k-1", PURCHASE, 1_772_417_700.0 - 3600)  # an hour before its occurred_at
    (rejection,) = intake.take([early]).rejections
    assert rejection["code"] == "dated-in-future"
    backfill = IntakeStage(POLICY, 1, clock=lambda: AT, check_clock_skew=False)  # history being loaded
    assert not backfill.take([early]).rejections

