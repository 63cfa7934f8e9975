"""The engine's running state in both stores (streams/state.py), without a broker.

What matters for money: a claim reads the keys of its own partition whatever event Faust
last handed out, a restore applies whole per-claim records, and with RocksDB the state and
the changelog offset it reached survive the process.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.app import build_app
from streams.config import DEFAULT_APP_ID, StreamConfig
from streams.stage_outputs import StageOutputs
from streams.state import ClaimWrites, compact_json
from streams.topics import STATE_TABLE, changelog_topic

CHANGELOG = changelog_topic(DEFAULT_APP_ID)


def changelog_event(partition: int, offset: int, writes: dict) -> SimpleNamespace:
    """A changelog record as Faust hands it to the table: its value as bytes."""
    message = SimpleNamespace(partition=partition, offset=offset, tp=TP(CHANGELOG, partition))
    return SimpleNamespace(value=compact_json({"w": writes}), message=message)


def state_table(tmp_path, store: str):
    app = build_app(StreamConfig(datadir=str(tmp_path / "data"), state_store=store))
    return app.tables[STATE_TABLE]


@pytest.mark.parametrize("store", ["rocksdb", "memory"])
def test_a_claim_reads_only_its_own_partition(tmp_path, store):
    table = state_table(tmp_path, store)
    table.apply_changelog_batch([
        changelog_event(0, 0, {"cap-a": {"amount": 100, "count": 1}}),
        changelog_event(2, 0, {"cap-b": {"amount": 7, "count": 1}}),
        changelog_event(0, 1, {"cap-a": {"amount": 250, "count": 2}, "claim-x": {"granted": 150}}),
    ])
    assert table.reader(0).get("cap-a") == {"amount": 250, "count": 2}
    assert table.reader(0).get("claim-x") == {"granted": 150}
    assert table.reader(2).get("cap-b") == {"amount": 7, "count": 1}
    if store == "rocksdb":  # the memory store is one dict; RocksDB keeps a database per partition
        assert table.reader(2).get("cap-a") is None


@pytest.mark.parametrize("store", ["rocksdb", "memory"])
def test_the_overlay_sees_the_table_plus_this_claims_writes(tmp_path, store):
    table = state_table(tmp_path, store)
    table.apply_changelog_batch([changelog_event(1, 0, {"cap": {"amount": 1, "count": 1}})])
    writes = ClaimWrites(table.reader(1))
    writes["cap"] = {"amount": 2, "count": 2}
    assert writes["cap"] == {"amount": 2, "count": 2}
    assert table.reader(1).get("cap") == {"amount": 1, "count": 1}  # nothing written until applied


def test_rocksdb_state_and_its_changelog_offset_survive_the_process(tmp_path):
    table = state_table(tmp_path, "rocksdb")
    table.apply_changelog_batch([changelog_event(3, 41, {"cap": {"amount": 5, "count": 1}}),
                                 changelog_event(3, 42, {"cap": {"amount": 9, "count": 2}})])
    assert table.data.persisted_offset(TP(CHANGELOG, 3)) == 42
    for db in table.data._dbs.values():
        db.close()  # what process exit does; RocksDB holds a lock on each database

    reopened = state_table(tmp_path, "rocksdb")
    assert reopened.reader(3).get("cap") == {"amount": 9, "count": 2}
    # Faust restores this partition from offset 43 on, not from the start of the changelog
    assert reopened.data.persisted_offset(TP(CHANGELOG, 3)) == 42


def test_an_unknown_state_store_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="SUBSIDY_STATE_STORE must be one of rocksdb, memory"):
        StreamConfig.from_env({"SUBSIDY_STATE_STORE": "redis"})


@pytest.mark.parametrize("store", ["rocksdb", "memory"])
def test_a_claims_writes_are_stored_and_queued_as_one_changelog_record(tmp_path, store):
    table = state_table(tmp_path, store)
    outputs = StageOutputs()
    writes = {"cap-a": {"amount": 250, "count": 2}, "claim-x": {"granted": "1.50", "who": "成都"}}
    table.apply_writes(2, "claim-x", writes, outputs)
    assert table.reader(2).get("claim-x") == {"granted": "1.50", "who": "成都"}
    [(topic, key, record, partition, _)] = outputs.queued
    assert (topic, partition, key) == (CHANGELOG, 2, b"claim-x")
    assert record == compact_json({"w": writes})  # encoded once, spliced; a restore reads it as JSON
    table.apply_changelog_batch([SimpleNamespace(value=record, message=SimpleNamespace(partition=1, offset=0, tp=TP(CHANGELOG, 1)))])
    assert table.reader(1).get("cap-a") == {"amount": 250, "count": 2}


def _delivered(record: tuple, offset: int) -> None:
    """What StageOutputs.deliver does once the broker acknowledged a changelog record."""
    _topic, _key, _value, partition, on_delivered = record
    on_delivered(TP(CHANGELOG, partition), offset)


def test_rocksdb_holds_only_changelog_records_the_broker_acknowledged(tmp_path):
    """A worker killed before a claim's changelog record left restarts on its RocksDB state. If
    that state already held the claim, the redelivered claim would pass for a repeat, and its
    record would never reach the changelog: the next worker to restore the partition would
    lack the claim and its cap charges. So a claim's writes reach RocksDB only with the
    changelog offset that holds them; until then they are read from memory."""
    table = state_table(tmp_path, "rocksdb")
    outputs = StageOutputs()
    table.apply_writes(1, "claim-a", {"claim-a": {"granted": 1}, "cap": {"amount": 1, "count": 1}}, outputs)
    table.apply_writes(1, "claim-b", {"claim-b": {"granted": 2}, "cap": {"amount": 3, "count": 2}}, outputs)
    sent = outputs.queued
    assert table.reader(1).get("cap") == {"amount": 3, "count": 2}  # the next claim sees both
    _delivered(sent[0], offset=7)
    assert table.reader(1).get("cap") == {"amount": 3, "count": 2}  # b's value still pending, still read
    for db in table.data._dbs.values():
        db.close()  # the process dies before claim-b's record was acknowledged

    reopened = state_table(tmp_path, "rocksdb")
    assert reopened.reader(1).get("claim-a") == {"granted": 1}
    assert reopened.reader(1).get("claim-b") is None
    assert reopened.reader(1).get("cap") == {"amount": 1, "count": 1}
    assert reopened.data.persisted_offset(TP(CHANGELOG, 1)) == 7  # the restore reads from 8 on


def test_a_changelog_record_that_skips_ahead_stops_the_worker_before_it_is_stored(tmp_path):
    table = state_table(tmp_path, "rocksdb")
    skipped = []

    def stop(tp, first, instead):
        skipped.append((tp.partition, first, instead))
        raise SystemExit(71)  # the worker's hook exits the process here

    table.on_skipped = stop
    table.apply_changelog_batch([changelog_event(2, 7, {"cap": {"amount": 5, "count": 1}})])  # a fresh database starts anywhere
    table.apply_changelog_batch([changelog_event(2, 7, {"cap": {"amount": 5, "count": 1}}),  # a repeat is fine
                                 changelog_event(2, 8, {"cap": {"amount": 9, "count": 2}})])
    with pytest.raises(SystemExit):
        table.apply_changelog_batch([changelog_event(2, 11, {"cap": {"amount": 30, "count": 5}})])  # 9 and 10 never came
    assert skipped == [(2, 9, 11)]
    assert table.data.persisted_offset(TP(CHANGELOG, 2)) == 8 and table.reader(2).get("cap") == {"amount": 9, "count": 2}


@pytest.mark.parametrize("store", ["rocksdb", "memory"])
def test_a_changelog_record_the_table_did_not_write_is_skipped_and_reported_and_the_restore_goes_on(tmp_path, store):
    table = state_table(tmp_path, store)
    table.on_skipped = lambda tp, first, instead: pytest.fail(f"a gap at {first}: the unreadable record was not counted as applied")
    unreadable = []
    table.on_unreadable = lambda message, reason: unreadable.append((message.offset, reason))
    poison = SimpleNamespace(value=b"not a state record", message=SimpleNamespace(partition=2, offset=8, tp=TP(CHANGELOG, 2)))
    table.apply_changelog_batch([changelog_event(2, 7, {"cap": {"amount": 5, "count": 1}}), poison])
    table.apply_changelog_batch([changelog_event(2, 9, {"cap": {"amount": 9, "count": 2}})])
    assert [offset for offset, _ in unreadable] == [8] and "not a state record of the decide agent" in unreadable[0][1]
    assert table.reader(2).get("cap") == {"amount": 9, "count": 2}
    if store == "rocksdb":
        assert table.data.persisted_offset(TP(CHANGELOG, 2)) == 9


_json_scalars = (
    st.none() | st.booleans() | st.integers() | st.text(st.characters(codec="utf-8"))
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x == 0 or abs(x) >= 1e-4)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(_json_values)
def test_compact_json_writes_the_bytes_the_standard_library_wrote(value):
    """Records written before the faster encoder must still match their redeliveries byte for byte."""
    assert compact_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
