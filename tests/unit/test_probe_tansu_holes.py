"""The tansu probe's reading of raw fetch responses (bench/probe_tansu_concurrent_produce.py)."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from bench.probe_tansu_concurrent_produce import holes


def batch(base_offset: int, records: int) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for offset_delta in range(records):
        builder.append(offset_delta, timestamp=None, key=None, value=b"claim", headers=[])
    raw = bytearray(builder.build())
    raw[0:8] = base_offset.to_bytes(8, "big")  # the broker sets a batch's base offset when it appends it
    return bytes(raw)


def test_batches_in_order_leave_no_hole():
    assert holes(batch(10, 5) + batch(15, 3), fetch_offset=10) == []


def test_a_batch_holding_the_fetch_offset_may_start_before_it():
    assert holes(batch(8, 5), fetch_offset=10) == []


def test_a_response_starting_past_the_fetch_offset_is_a_hole():
    assert holes(batch(14, 5), fetch_offset=10) == [(10, 14)]


def test_a_batch_starting_past_the_end_of_the_one_before_is_a_hole():
    assert holes(batch(10, 5) + batch(20, 3), fetch_offset=12) == [(15, 20)]


def test_a_partial_batch_at_the_end_is_left_for_the_next_fetch():
    assert holes(batch(10, 5) + batch(30, 3)[:20], fetch_offset=10) == []
