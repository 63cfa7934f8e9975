"""A stage batch's outputs, handed to the Kafka producer after the whole batch was decided.

Intake and decide used to queue each output with Faust's ``Topic.send_soon``. Two reasons
this module replaces that on the hot path:

* **Cost.** Every ``send_soon`` goes through Faust's ProducerBuffer: a FutureMessage, a queue,
  a wake-up of the buffer's task, ``Channel.publish_message`` (schema, codecs, headers), the
  sensors' start and completion hooks, then aiokafka's ``send``. py-spy put that at about a
  fifth of a busy worker, for ~four messages per input. Here an output is a tuple, and the
  batch's tuples go straight to aiokafka's ``send``, which appends to its per-partition
  record batch.
* **A flush that does not wait.** Faust commits offsets after ``producer.flush()``, whose
  ProducerBuffer part gives up when no message left the buffer for 0.1 s
  (``flush_atmost``'s timeout) and lets the commit go on with messages still in the buffer.
  A worker killed then has committed inputs whose outputs never reached Kafka. aiokafka's own
  flush waits for every record batch it holds, and everything sent from here is in those
  batches before the stage acknowledges its events.

Delivery failures are not left to the flush either: aiokafka's flush waits for failed batches
as for sent ones, so a record that could not be delivered (its retries exhausted) ends the
worker before anything later can be committed (``on_lost``).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, Callable, Optional

#: a queued message: topic, key, value, partition (None: by key), called with its RecordMetadata once delivered
Message = tuple[str, Optional[bytes], bytes, Optional[int], Optional[Callable[[Any], None]]]


class Outbox:
    """Outputs queued in a block with no ``await``; :meth:`send` hands them to the producer."""

    __slots__ = ("messages", "_on_lost")

    def __init__(self, on_lost: Callable[[BaseException], None]):
        self.messages: list[Message] = []
        self._on_lost = on_lost

    def put(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
            on_delivered: Callable[[Any], None] | None = None) -> None:
        self.messages.append((topic, key, value, partition, on_delivered))

    async def send(self, producer: Any) -> None:
        """Append every queued message to ``producer``'s (an AIOKafkaProducer's) record batches,
        in order, and watch each delivery."""
        messages, self.messages = self.messages, []
        send = producer.send
        for topic, key, value, partition, on_delivered in messages:
            delivery = await send(topic, value, key=key, partition=partition)
            delivery.add_done_callback(self._check_delivered if on_delivered is None else partial(self._check_delivered, then=on_delivered))

    def _check_delivered(self, delivery: asyncio.Future, then: Callable[[Any], None] | None = None) -> None:
        if delivery.cancelled():
            return
        if delivery.exception() is not None:
            self._on_lost(delivery.exception())  # type: ignore[arg-type]
        elif then is not None:
            then(delivery.result())
