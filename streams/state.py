"""The engine's running state as a Faust table whose changelog is written one claim at a time.

The engine runs over an overlay (:class:`ClaimWrites`) that collects one claim's writes (its
record and every cap it charged; a refund also rewrites its original), and
:meth:`TxnTable.apply_writes` puts them in the table and queues them as **one** changelog record
``claim key -> {"w": {key: value, ...}}``, so a restore applies a claim whole or not at all. The
changelog is not compacted.

Two stores hold the table (``SUBSIDY_STATE_STORE``): ``rocksdb`` (the default: one RocksDB
database per partition on local disk; it only ever holds changelog records the broker
acknowledged, each stored with its offset in one batch, and until then a claim's writes are read
from memory) and ``memory`` (everything in a dict, rebuilt from the whole changelog). Every read
and write names its partition. A changelog record that :meth:`TxnTable.apply_writes` did not
write (``streams/own_records.py``) is skipped by restores and standbys alike and handed to
``on_unreadable``, which dead-letters it.

WHY each of these (a plain Faust table and Faust's RocksDB store lost cap charges after a kill,
or read a cap in the wrong partition): docs/decisions/0004-one-changelog-record-per-claim.md.
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import partial
from typing import Any, Callable, Iterable, Iterator, MutableMapping

import faust
import pydantic_core
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import EventT

from streams.own_records import Unreadable, read_changelog_record
from streams.stage_outputs import Delivered, StageOutputs

_MISSING = object()


class ClaimWrites(MutableMapping[str, Any]):
    """Read-through overlay: reads see the table plus this claim's writes; writes stay here."""

    __slots__ = ("base", "writes")

    def __init__(self, base: MutableMapping[str, Any]):
        self.base = base
        self.writes: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self.writes.get(key, _MISSING)
        if value is _MISSING:
            value = self.base.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # hot path: avoid KeyError
        value = self.writes.get(key, _MISSING)
        if value is _MISSING:
            value = self.base.get(key)
        return default if value is None else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes[key] = value

    def __delitem__(self, key: str) -> None:  # the engine never deletes
        raise NotImplementedError("the running state is append/overwrite only")

    def __iter__(self) -> Iterator[str]:  # not used by the engine
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


def compact_json(value: Any) -> bytes:
    """UTF-8 JSON with no spaces: the form of every message and stored value the pipeline writes.

    The same bytes as ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` encoded
    as UTF-8 for every value the pipeline writes (tests/unit/test_state_store.py), made by
    pydantic's Rust serializer: 6x faster, and the stdlib encoder was a tenth of a loaded
    worker's main thread (py-spy). They differ only in floats below 1e-4 (``1e-7``, not
    ``1e-07``); the only float written is a claim's input timestamp."""
    return pydantic_core.to_json(value)


class TxnTable(faust.Table):
    """A Faust table written (and restored) in whole per-claim records; see the module doc."""

    _changelog_compacting = False
    _changelog_deleting = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # RocksDB only: writes whose changelog record the broker has not acknowledged yet, by
        # partition: key -> (the record's sequence number, encoded value). See apply_writes.
        self._unacknowledged: dict[int, dict[str, tuple[int, bytes]]] = defaultdict(dict)
        self._records_sent = 0
        #: told (tp, first skipped offset, offset that came instead) and must stop the worker
        self.on_skipped: Callable[[Any, int, int], None] | None = None
        #: told (message, reason) of a changelog record that is not one apply_writes wrote
        self.on_unreadable: Callable[[Any, str], None] | None = None

    def reader(self, partition: int) -> "PartitionView":
        """What the engine reads through for a claim of ``partition``."""
        store = self.data
        if isinstance(store, RocksDBStore):
            db = store._db_for_partition(partition)
            unacknowledged = self._unacknowledged[partition]

            def get(key: str) -> Any:
                pending = unacknowledged.get(key)
                raw = pending[1] if pending is not None else db.get(key.encode("utf-8"))
                return None if raw is None else json.loads(raw)

            return PartitionView(get)
        return PartitionView(store.data.get)

    def apply_writes(self, partition: int, txn_key: str, writes: dict[str, Any], outputs: StageOutputs) -> None:
        """Make one claim's writes visible to the next claims and queue them as one changelog
        record, with the claim's other outputs (streams/stage_outputs.py).

        WHY RocksDB gets them only once the broker acknowledged the record: a worker killed
        before that restarts on its RocksDB state (production keeps it on a volume). Had the
        writes been stored at once, the redelivered claim would find itself decided and pass for
        a repeat, so its record would never reach the changelog, and the next worker to restore
        the partition would lack the claim and its cap charges (paying past a cap, or a refund
        finding no payment to claw back). Stored with the record's offset in one batch, RocksDB
        always equals the changelog up to the offset it holds."""
        if not writes:
            return
        # each value encoded once, for the store and for the changelog record: a claim's record
        # holds its decisions and instructions, and encoding them is a large part of a claim's cost
        encoded = [(key, compact_json(value)) for key, value in writes.items()]
        record = b'{"w":{' + b",".join(compact_json(key) + b":" + value for key, value in encoded) + b"}}"
        if isinstance(self.data, RocksDBStore):
            self._records_sent += 1
            sequence = self._records_sent
            unacknowledged = self._unacknowledged[partition]
            for key, value in encoded:
                unacknowledged[key] = (sequence, value)
            on_delivered: Delivered = partial(self._store_acknowledged, partition, sequence, encoded)
        else:  # the memory store is rebuilt from the whole changelog at every start
            self._store_writes({partition: writes.items()}, {})
            on_delivered = self.data.set_persisted_offset
        # the key as the table's raw key serializer gave it; the value is already JSON, which a
        # restore reads back with the table's json serializer
        outputs.put(self.changelog_topic.get_topic_name(), txn_key.encode("utf-8"), record, partition, on_delivered)

    def _store_acknowledged(self, partition: int, sequence: int, encoded: list[tuple[str, bytes]], tp: Any, offset: int) -> None:
        """The broker holds record ``sequence`` at ``tp``/``offset``: store its writes with that offset, atomically."""
        self._put_encoded(self.data, {partition: [(key.encode("utf-8"), value) for key, value in encoded]}, {tp: offset})
        unacknowledged = self._unacknowledged[partition]
        for key, _ in encoded:
            pending = unacknowledged.get(key)
            if pending is not None and pending[0] == sequence:  # no later claim wrote it since
                del unacknowledged[key]

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        by_partition: dict[int, list[tuple[str, Any]]] = defaultdict(list)
        last_offsets: dict[Any, int] = {}
        for event in batch:
            message = event.message
            self._check_contiguous(message.tp, message.offset, last_offsets)
            last_offsets[message.tp] = max(message.offset, last_offsets.get(message.tp, -1))
            try:
                writes = read_changelog_record(event.value)
            except Unreadable as exc:
                # not a claim's writes, so the state is whole without it; its offset counts as
                # applied, and the restore goes on
                if self.on_unreadable is not None:
                    self.on_unreadable(message, exc.reason)
                continue
            by_partition[message.partition].extend(writes.items())
        self._store_writes(by_partition, last_offsets)

    def _check_contiguous(self, tp: Any, offset: int, last_offsets: dict[Any, int]) -> None:
        """The changelog is never compacted and never written in transactions, so a restore or
        a standby that receives record N must have applied N-1: a jump means the consumer lost
        records on their way here (as it does for the claims, and did for the former ledger feed:
        see streams/faust_runtime/skip_fix.py), and the database would then hold its offset past claims it
        never stored. RocksDB only (its persisted offset says what was applied); the memory
        store is rebuilt from the whole changelog at each start."""
        if self.on_skipped is None or not isinstance(self.data, RocksDBStore):
            return
        last = last_offsets.get(tp)
        if last is None:
            last = self.data.persisted_offset(tp)
            if last is None:
                return  # a fresh database: it starts wherever the changelog begins
        if offset > last + 1:
            self.on_skipped(tp, last + 1, offset)

    def _store_writes(self, by_partition: dict[int, Iterable[tuple[str, Any]]], last_offsets: dict[Any, int]) -> None:
        """Write each partition's keys at once; with RocksDB, in one atomic batch per partition
        together with the changelog offset they bring the database up to."""
        store = self.data
        if isinstance(store, RocksDBStore):
            self._put_encoded(
                store, {p: [(key.encode("utf-8"), compact_json(value)) for key, value in items] for p, items in by_partition.items()},
                last_offsets,
            )
            return
        data = store.data
        key_partition = getattr(store, "_key_partition", None)
        for partition, items in by_partition.items():
            for key, value in items:
                data[key] = value
                if key_partition is not None:
                    key_partition[key] = partition

    @staticmethod
    def _put_encoded(store: RocksDBStore, by_partition: dict[int, list[tuple[bytes, bytes]]], last_offsets: dict[Any, int]) -> None:
        """Encoded keys and values into each partition's database, one atomic batch each."""
        from rocksdict import WriteBatch

        batches: dict[int, Any] = defaultdict(lambda: WriteBatch(raw_mode=True))
        for partition, items in by_partition.items():
            batch = batches[partition]
            for key, value in items:
                batch.put(key, value)
        for tp, offset in last_offsets.items():
            batches[tp.partition].put(store.offset_key, str(offset).encode())
        for partition, batch in batches.items():
            store._db_for_partition(partition).write(batch)


class PartitionView:
    """What the overlay reads through: one partition of the table's store, without sensors."""

    __slots__ = ("_get",)

    def __init__(self, get: Callable[[str], Any]):
        self._get = get

    def get(self, key: str, default: Any = None) -> Any:
        value = self._get(key)
        return default if value is None else value
