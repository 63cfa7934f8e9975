"""Commit offsets only after every message queued before the commit has been delivered.

WHY: faust-streaming 0.15.3 can commit an input's offset while that input's outputs are still
in its producer buffer. Faust flushes the producer before each commit, but the buffer's flush
(``ProducerBuffer.flush_atmost``) gives up as soon as one message takes longer than 0.1 s to
be handed to aiokafka, which a busy two-core machine easily exceeds, and the commit then goes
ahead. A worker killed or stopped before the buffer drained has committed claims whose
decisions never left it. Worse, the decide stage queues a claim's changelog record before its
outputs, so the changelog can be delivered and the outputs lost: the restarted worker finds
the claim decided in its table and has nothing to resend, and the ledger later refuses the
claim's clawback ("corrects X, which is not a payment in the ledger"), as
tests/integration/test_pipeline.py::test_kill_9_worker_repeatedly once did on this code.
tests/unit/test_faust_flush_fix.py shows Faust's flush returning with messages queued.

The fix: the buffer remembers every message it is given until the broker has acknowledged it,
and the producer's flush (so every commit) waits for all of them. A message that fails, or
that is still unacknowledged after ``DELIVERY_TIMEOUT_SECONDS``, fails the flush, so the commit
does not happen and the worker's inputs are read again (every id is deterministic).
"""

from __future__ import annotations

import asyncio
from typing import Callable

from faust.transport.drivers.aiokafka import Producer
from faust.transport.producer import ProducerBuffer

from streams.faust_patching import require_faust

DELIVERY_TIMEOUT_SECONDS = 60.0


class UndeliveredMessages(RuntimeError):
    """Messages queued before a commit were not acknowledged by the broker: do not commit."""


_FIX: dict = {"installed": False, "on_wait": lambda count: None}


def install(on_wait: Callable[[int], None] = lambda count: None) -> None:
    """Patch Faust's producer buffer and producer flush (idempotent). ``on_wait`` is told how
    many messages Faust's own flush left unacknowledged, each time this fix has to wait."""
    _FIX["on_wait"] = on_wait
    if _FIX["installed"]:
        return
    require_faust("streams/faust_flush_fix.py", (ProducerBuffer, "put"), (Producer, "flush"))
    original_put = ProducerBuffer.put
    original_flush = Producer.flush

    def put(self, fut) -> None:
        undelivered = self.__dict__.setdefault("_undelivered", set())
        undelivered.add(fut)
        fut.add_done_callback(undelivered.discard)
        original_put(self, fut)

    async def flush(self) -> None:
        await original_flush(self)
        undelivered = self.buffer.__dict__.get("_undelivered", ())
        if undelivered:
            _FIX["on_wait"](len(undelivered))
            await wait_delivered(undelivered, DELIVERY_TIMEOUT_SECONDS)

    ProducerBuffer.put = put  # type: ignore[method-assign]
    Producer.flush = flush  # type: ignore[method-assign]
    _FIX["installed"] = True


async def wait_delivered(undelivered, timeout: float) -> None:
    """Return once every future in ``undelivered`` (as it is now) succeeded; raise otherwise."""
    pending = list(undelivered)
    if not pending:
        return
    done, still_pending = await asyncio.wait(pending, timeout=timeout)
    if still_pending:
        raise UndeliveredMessages(
            f"{len(still_pending)} produced messages were not acknowledged by the broker within {timeout:.0f} s; "
            "not committing the offsets of the inputs that made them (they will be read again)"
        )
    failed = [fut for fut in done if not fut.cancelled() and fut.exception() is not None]
    cancelled = [fut for fut in done if fut.cancelled()]
    if failed or cancelled:
        first = failed[0].exception() if failed else "cancelled"
        raise UndeliveredMessages(
            f"{len(failed) + len(cancelled)} produced messages failed ({first}); "
            "not committing the offsets of the inputs that made them (they will be read again)"
        )
