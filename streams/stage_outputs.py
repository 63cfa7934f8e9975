"""A stage batch's outputs, handed to the Kafka producer as record batches and awaited.

Intake and decide queue every output of a batch here (claims, changelog records, decisions,
instructions, rejections) in a block with no ``await``, then :meth:`StageOutputs.deliver`
hands them to aiokafka as one record batch per partition and returns once the broker has
acknowledged every record. The stage acknowledges its events only after that; a record that
cannot be delivered raises here, and the stage stops the worker without acknowledging its batch.

WHY not Faust's ``Topic.send_soon`` (a fifth of a busy worker, and a flush that let commits pass
outputs still queued): docs/decisions/0005-stage-outputs-as-awaited-record-batches.md.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Optional

#: told the topic partition and offset of a record once the broker has acknowledged it
Delivered = Callable[[Any, int], None]

#: The largest record (key + value) the pipeline produces; every topic it writes takes records of
#: at least this size (streams/topics.py). What bounds each kind, with the worst case of each
#: (every field as long as the contract allows, every character escaped to 6 bytes of JSON;
#: tests/unit/test_record_sizes.py):
#: * a rejection: at most 64 KiB of the original (base64, and as text), 2,000 characters of
#:   reason, 1 KiB of key (schemas/outputs.py): 500,125 bytes;
#: * a claim (subsidy-claims): the claim's fields, each bounded by the input contract (names of
#:   256 characters, ids of 128), and its origin with at most 64 KiB of the input: 93,219 bytes;
#: * a changelog record: one claim's state writes (its decision and instructions, a refund's
#:   purchase rewritten, a few cap counters), of the same bounded fields: 26,634 bytes;
#: * a decision or an instruction: 8,084 bytes.
MAX_RECORD_BYTES = 512 * 1024


class StageOutputs:
    """Records queued in processing order; :meth:`deliver` sends and awaits them."""

    __slots__ = ("queued",)

    def __init__(self) -> None:
        self.queued: list[tuple[str, Optional[bytes], bytes, Optional[int], Optional[Delivered]]] = []

    def __len__(self) -> int:
        return len(self.queued)

    def put(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
            on_delivered: Delivered | None = None) -> None:
        """Queue one record; ``partition`` None: the producer's partitioner picks it from the key
        (Kafka's murmur2, as Faust's sends did)."""
        assert len(value) + len(key or b"") <= MAX_RECORD_BYTES, (
            f"a record of {len(value) + len(key or b''):,} bytes for {topic} is over MAX_RECORD_BYTES "
            f"({MAX_RECORD_BYTES:,}): something it carries is no longer bounded (streams/stage_outputs.py)")
        self.queued.append((topic, key, value, partition, on_delivered))

    async def deliver(self, producer: Any) -> None:
        """Hand every queued record to ``producer`` (an AIOKafkaProducer), each partition's in the
        order they were put, and return once the broker acknowledged all of them; raise if any
        record could not be delivered."""
        records, self.queued = self.queued, []
        for topic in {topic for topic, _, _, partition, _ in records if partition is None}:
            await producer.client._wait_on_metadata(topic)  # the partitioner needs the partition count
        by_partition: dict[tuple[str, int], list] = defaultdict(list)
        for topic, key, value, partition, on_delivered in records:
            if partition is None:
                partition = producer._partition(topic, None, None, None, key, None)
            by_partition[topic, partition].append((key, value, on_delivered))
        sent = []
        for (topic, partition), items in by_partition.items():
            start = 0
            while start < len(items):
                batch = producer.create_batch()
                end = start + 1  # a batch always takes its first record, whatever its size
                batch.append(key=items[start][0], value=items[start][1], timestamp=None)
                while end < len(items) and batch.append(key=items[end][0], value=items[end][1], timestamp=None) is not None:
                    end += 1
                sent.append((await producer.send_batch(batch, topic, partition=partition), items[start:end]))
                start = end
        for delivery, items in sent:
            metadata = await delivery  # raises if the broker did not take the batch
            for index, (_, _, on_delivered) in enumerate(items):
                if on_delivered is not None:
                    on_delivered(metadata.topic_partition, metadata.offset + index)
