"""streams/faust_runtime/skip_fix.py on Faust's own consumer bookkeeping: a record that no stage handled
is never committed; the inputs keep Faust's head holes, and its gaps where the broker holds no
record there (transaction markers)."""

import asyncio
from collections import defaultdict

import pytest
from faust.transport.drivers.aiokafka import Consumer  # Faust's consumer; the patched methods are inherited
from faust.types import TP
from intervaltree import IntervalTree

from streams.faust_runtime import skip_fix as faust_skip_fix

CLAIMS, INPUT = TP("subsidy-claims", 2), TP("model-invoices", 1)


class Stopped(Exception):
    pass


class Message:
    """The fields Consumer.ack reads."""

    def __init__(self, tp: TP, offset: int):
        self.tp, self.topic, self.offset, self.acked = tp, tp.topic, offset, False


class Topics:
    def acks_enabled_for(self, topic: str) -> bool:
        return True


class App:
    topics = Topics()
    consumer_generation_id, rebalancing_count = 7, 3
    in_recovery = rebalancing = False


@pytest.fixture
def consumer():
    seen = []

    def on_gap(tp, first, after, detail):
        seen.append((tp, first, after, detail))
        raise Stopped  # as os._exit would: nothing after it runs

    #: what the broker holds in an input, by offset: a record (True) or a transaction marker (False)
    broker_holds: dict[int, bool] = {}

    async def records_in(tp, first, after):
        if broker_holds.get(-1):
            raise ConnectionError("broker unreachable")
        return [offset for offset in range(first, after) if broker_holds.get(offset)]

    input_gaps = []
    faust_skip_fix.install({CLAIMS.topic}, on_gap, stage_topics={INPUT.topic}, records_in=records_in,
                           on_input_gap=lambda tp, first, after: input_gaps.append((tp, first, after)))
    faust_skip_fix._DROPPED.clear()
    consumer = Consumer.__new__(Consumer)  # only the offset bookkeeping is exercised
    consumer.app = App()
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._gap = defaultdict(IntervalTree)
    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._unacked_messages = set()
    consumer._n_acked = 0
    consumer._waiting_for_ack = None
    consumer.flow_active = True
    consumer._active_partitions, consumer._buffered_partitions, consumer._paused_partitions = {CLAIMS}, set(), set()
    consumer.gaps_seen, consumer.input_gaps, consumer.broker_holds = seen, input_gaps, broker_holds
    return consumer


VIEW = ("Faust's view: flow_active=True generation=7 in_recovery=False rebalancing=False rebalances=3 "
        "active={active} buffered=False paused=False committed=@None acked_pending=0")


def test_a_gap_in_our_topics_stops_the_worker(consumer):
    with pytest.raises(Stopped):
        asyncio.run(consumer._add_gap(CLAIMS, 495, 497))
    assert consumer.gaps_seen == [(CLAIMS, 495, 497, VIEW.format(active=True))]
    assert not consumer._gap[CLAIMS]


def test_an_input_gap_of_transaction_markers_is_taken_as_faust_takes_it(consumer):
    consumer.broker_holds.update({10: False, 11: False, 12: True})  # markers, then the record Faust read next
    asyncio.run(consumer._add_gap(INPUT, 10, 12))
    assert sorted((i.begin, i.end) for i in consumer._gap[INPUT]) == [(10, 13)]
    assert consumer.input_gaps == [(INPUT, 10, 12)]  # told, so the worker counts it
    assert consumer.gaps_seen == []


def test_an_input_gap_over_records_stops_the_worker_before_faust_can_commit_past_it(consumer):
    consumer.broker_holds.update({10: False, 11: True, 12: True})
    with pytest.raises(Stopped):
        asyncio.run(consumer._add_gap(INPUT, 10, 12))
    assert consumer.gaps_seen == [(INPUT, 10, 12, "the broker holds 1 record(s) there: @11; " + VIEW.format(active=False))]
    assert not consumer._gap[INPUT] and consumer.input_gaps == []


def test_an_input_gap_that_cannot_be_checked_stops_the_worker(consumer):
    consumer.broker_holds[-1] = True
    with pytest.raises(Stopped):
        asyncio.run(consumer._add_gap(INPUT, 10, 12))
    assert consumer.gaps_seen[0][3].startswith("they could not be checked for records (broker unreachable); Faust's view:")
    assert not consumer._gap[INPUT] and consumer.input_gaps == []


def test_inputs_besides_our_topics_need_a_gap_check():
    with pytest.raises(ValueError, match="need records_in"):
        faust_skip_fix.install({CLAIMS.topic}, lambda *args: None, stage_topics={INPUT.topic})


def test_only_records_a_stage_was_handed_are_acknowledged(consumer):
    consumer._committed_offset[CLAIMS] = 495
    dropped, handled = Message(CLAIMS, 495), Message(CLAIMS, 496)
    faust_skip_fix.handed(handled)
    assert consumer.ack(dropped) is False  # dropped during a rebalance: Faust would ack it
    assert consumer.ack(handled) is True
    assert consumer._acked[CLAIMS] == [496]
    # Faust would commit 497 over the unread 495 (a one-record hole at the head); nothing now
    assert consumer._new_offset(CLAIMS) is None
    again = Message(CLAIMS, 495)  # read again after the seek that follows the rebalance
    faust_skip_fix.handed(again)
    assert consumer.ack(again) is True
    assert consumer._new_offset(CLAIMS) == 497


def test_inputs_keep_fausts_head_hole_for_transaction_markers(consumer):
    consumer._committed_offset[INPUT] = 10
    handled = Message(INPUT, 11)  # e.g. a transaction marker at 10, which no stage is handed
    faust_skip_fix.handed(handled)
    assert consumer.ack(handled) is True
    assert consumer._new_offset(INPUT) == 12


def test_an_input_dropped_at_the_head_is_not_committed_over(consumer):
    """The soak's lost model invoice: published during a rebalance and dropped unread; Faust
    acknowledged it, or committed over it as a one-record hole at the head."""
    consumer._committed_offset[INPUT] = 8222
    dropped, handled = Message(INPUT, 8222), Message(INPUT, 8223)
    faust_skip_fix.handed(handled)
    assert consumer.ack(dropped) is False
    assert consumer.ack(handled) is True
    assert consumer._new_offset(INPUT) is None  # Faust alone: 8224, past the unread 8222
    again = Message(INPUT, 8222)  # read again after the rebalance's seek to the committed offset
    faust_skip_fix.handed(again)
    assert consumer.ack(again) is True
    assert consumer._new_offset(INPUT) == 8224


def test_a_drop_behind_the_commit_is_a_repeat_and_holds_nothing(consumer):
    consumer._committed_offset[INPUT] = 100
    assert consumer.ack(Message(INPUT, 99)) is False  # a repeat dropped after a seek back
    handled = Message(INPUT, 100)
    faust_skip_fix.handed(handled)
    consumer.ack(handled)
    assert consumer._new_offset(INPUT) == 101


def test_a_drop_read_and_committed_by_another_owner_no_longer_holds_commits(consumer):
    consumer._committed_offset[INPUT] = 50
    assert consumer.ack(Message(INPUT, 55)) is False
    consumer._committed_offset[INPUT] = 60  # the partition went elsewhere and came back, past 55
    handled = Message(INPUT, 60)
    faust_skip_fix.handed(handled)
    consumer.ack(handled)
    assert consumer._new_offset(INPUT) == 61


def test_the_consumer_view_never_raises():
    assert faust_skip_fix.consumer_view(object(), CLAIMS).startswith("(consumer state unavailable: AttributeError(")


def test_the_worker_counts_an_input_gap_of_markers_and_says_what_to_do_when_it_stops(caplog):
    from streams.app import input_gap_taken, records_skipped
    from streams.metrics import METRICS

    before = METRICS.input_gaps.values[(INPUT.topic,)]
    input_gap_taken(INPUT, 10, 12)
    assert METRICS.input_gaps.values[(INPUT.topic,)] == before + 2
    exits = []
    with caplog.at_level("CRITICAL", logger="streams"), pytest.MonkeyPatch.context() as patch:
        patch.setattr("streams.app.exit_now", exits.append)
        records_skipped(INPUT, 10, 12, "the broker holds 1 record(s) there: @11")
    assert exits == [71]
    assert ("model-invoices[1]: the consumer skipped offsets @10..@11 on their way to the agent; exiting before a "
            "commit can pass them, so that a restarted worker reads them again") in caplog.text
    assert caplog.text.rstrip().endswith("; the broker holds 1 record(s) there: @11")
