"""streams/faust_flush_fix.py on Faust's real ProducerBuffer, with a stand-in broker that takes
longer than 0.1 s to accept each message: unpatched, a flush returns with messages still in the
buffer (and Faust would commit); patched, it returns only once the broker acknowledged them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.transport.drivers.aiokafka import Producer
from faust.transport.producer import ProducerBuffer
from faust.types.tuples import FutureMessage, PendingMessage

from streams import faust_flush_fix
from streams.faust_flush_fix import UndeliveredMessages, wait_delivered

faust_flush_fix.install()


class SlowBroker:
    """A channel whose sends take ``accept_seconds`` to be accepted, then are acknowledged
    (or fail with ``error``) ``ack_seconds`` later, as aiokafka's send and delivery do."""

    def __init__(self, accept_seconds: float, ack_seconds: float = 0.01, error: Exception | None = None):
        self.accept_seconds, self.ack_seconds, self.error = accept_seconds, ack_seconds, error

    async def publish_message(self, fut: FutureMessage, wait: bool = False) -> None:
        await asyncio.sleep(self.accept_seconds)
        loop = asyncio.get_running_loop()
        if self.error is not None:
            loop.call_later(self.ack_seconds, fut.set_exception, self.error)
        else:
            loop.call_later(self.ack_seconds, fut.set_result, "acknowledged")


def _message(channel) -> FutureMessage:
    return FutureMessage(PendingMessage(channel, b"k", b"v", None, None, None, "raw", "raw", None))


async def _running_buffer() -> ProducerBuffer:
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    await buffer.start()
    return buffer


def _stand_in_producer(buffer: ProducerBuffer) -> SimpleNamespace:
    return SimpleNamespace(buffer=buffer, _producer=None, _transaction_producers={})


def test_unpatched_buffer_flush_returns_with_messages_still_queued():
    async def scenario():
        buffer = await _running_buffer()
        messages = [_message(SlowBroker(accept_seconds=0.15)) for _ in range(5)]
        for fut in messages:
            buffer.put(fut)
        await buffer.flush()  # Faust's own: gives up when one message takes over 0.1 s
        undelivered = sum(not fut.done() for fut in messages)
        await Producer.flush(_stand_in_producer(buffer))  # drain before stopping the buffer
        await buffer.stop()
        return undelivered

    assert asyncio.run(scenario()) > 0


def test_patched_flush_returns_only_when_every_queued_message_is_acknowledged():
    waits: list[int] = []
    faust_flush_fix.install(on_wait=waits.append)

    async def scenario():
        buffer = await _running_buffer()
        messages = [_message(SlowBroker(accept_seconds=0.15)) for _ in range(5)]
        for fut in messages:
            buffer.put(fut)
        await Producer.flush(_stand_in_producer(buffer))
        delivered = all(fut.done() and fut.result() == "acknowledged" for fut in messages)
        remembered = len(buffer.__dict__["_undelivered"])
        await buffer.stop()
        return delivered, remembered

    assert asyncio.run(scenario()) == (True, 0)
    assert waits and waits[0] > 0  # Faust's own flush had left messages behind: counted


def test_a_failed_delivery_fails_the_flush_so_nothing_is_committed():
    async def scenario():
        buffer = await _running_buffer()
        buffer.put(_message(SlowBroker(accept_seconds=0.0)))
        buffer.put(_message(SlowBroker(accept_seconds=0.0, error=OSError("broker went away"))))
        try:
            with pytest.raises(UndeliveredMessages, match="1 produced messages failed .*broker went away"):
                await Producer.flush(_stand_in_producer(buffer))
        finally:
            await buffer.stop()

    asyncio.run(scenario())


def test_a_message_never_acknowledged_fails_the_wait_after_the_timeout():
    async def scenario():
        never = asyncio.get_running_loop().create_future()
        with pytest.raises(UndeliveredMessages, match="1 produced messages were not acknowledged"):
            await wait_delivered({never}, timeout=0.05)

    asyncio.run(scenario())


def test_a_faust_without_the_patched_method_is_refused_not_silently_unfixed():
    from streams.faust_patching import require_faust

    with pytest.raises(RuntimeError, match="ProducerBuffer has no put_many: streams/faust_flush_fix.py was written for faust-streaming 0.15"):
        require_faust("streams/faust_flush_fix.py", (ProducerBuffer, "put"), (ProducerBuffer, "put_many"))
