"""The stage outbox against a stand-in for aiokafka's producer (one piece, so a fake is fair)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from streams.outbox import Outbox


class RecordingProducer:
    """Like AIOKafkaProducer.send: appends, and returns a future settled at delivery."""

    def __init__(self):
        self.sent: list[tuple] = []
        self.deliveries: list[asyncio.Future] = []

    async def send(self, topic, value, *, key=None, partition=None):
        self.sent.append((topic, key, value, partition))
        delivery = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery


def test_messages_reach_the_producer_in_order_and_the_outbox_empties():
    async def run():
        lost: list = []
        outbox = Outbox(on_lost=lost.append)
        outbox.put("claims", b"c1", b"1")
        outbox.put("feed", None, b"2", partition=3)
        producer = RecordingProducer()
        await outbox.send(producer)
        assert producer.sent == [("claims", b"c1", b"1", None), ("feed", None, b"2", 3)]
        assert outbox.messages == []
        await outbox.send(producer)  # nothing queued: nothing sent again
        assert len(producer.sent) == 2
        assert lost == []

    asyncio.run(run())


def test_a_delivered_record_reports_its_metadata_and_a_lost_one_reports_the_error():
    async def run():
        lost: list = []
        delivered: list = []
        outbox = Outbox(on_lost=lost.append)
        outbox.put("changelog", b"k", b"v", partition=1, on_delivered=delivered.append)
        outbox.put("decisions", b"p", b"d")
        producer = RecordingProducer()
        await outbox.send(producer)
        metadata = SimpleNamespace(topic="changelog", partition=1, offset=41)
        producer.deliveries[0].set_result(metadata)
        error = RuntimeError("retries exhausted")
        producer.deliveries[1].set_exception(error)
        await asyncio.sleep(0)  # done callbacks run on the next loop turn
        assert delivered == [metadata]
        assert lost == [error]

    asyncio.run(run())
