"""streams/faust_gap_fix.py on Faust's own Consumer: our topics never get a gap committed."""

import asyncio

from faust.transport.drivers.aiokafka import Consumer  # Faust's consumer, its gap method inherited
from faust.types import TP

from streams import faust_gap_fix


class Stopped(Exception):
    pass


def test_a_gap_in_our_topics_stops_the_worker_and_other_topics_keep_fausts_gaps():
    seen = []

    def on_gap(tp, first, after):
        seen.append((tp, first, after))
        raise Stopped  # as os._exit would: nothing after it runs

    faust_gap_fix.install({"subsidy-ledger-feed"}, on_gap)
    consumer = Consumer.__new__(Consumer)  # only the gap bookkeeping is exercised
    from collections import defaultdict

    from intervaltree import IntervalTree

    consumer._committed_offset = defaultdict(lambda: None)
    consumer._gap = defaultdict(IntervalTree)
    feed, inputs = TP("subsidy-ledger-feed", 2), TP("model-invoices", 1)
    try:
        asyncio.run(consumer._add_gap(feed, 495, 497))
    except Stopped:
        pass
    assert seen == [(feed, 495, 497)] and not consumer._gap[feed]
    asyncio.run(consumer._add_gap(inputs, 10, 12))  # a compacted or transactional input: Faust's way
    assert sorted((i.begin, i.end) for i in consumer._gap[inputs]) == [(10, 13)]
