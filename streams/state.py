"""The engine's running state as a Faust table whose changelog is written one claim at a time.

The engine changes several keys for one claim: the claim's record and every cap it charged
(a refund also rewrites its original). A plain Faust table sends one changelog record per
key, so a worker killed while the producer drains its buffer leaves a changelog holding the
caps of claim X but not X's record. The worker that restores from it would then decide X
again and charge its caps twice: every later grant under those caps would come out short,
and not the same as a replay.

So the engine runs over an overlay (:class:`ClaimWrites`) that collects its writes, and
:meth:`TxnTable.apply_writes` puts them in the table and sends them as **one** changelog
record ``claim key -> {"w": {key: value, ...}}``. A restore applies whole records or
nothing. Records of one partition are produced and read back in order (aiokafka keeps one
batch per partition in flight), so a restore yields every claim up to some point and none
after it, and everything after that point is re-decided from the same state: the same
decisions with the same content, which the ledger stores once.

The changelog is not compacted: compaction keeps only the newest record of a key, and a
claim key written again (re-decided after a crash) would move that claim's cap values after
later claims' values.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, MutableMapping

import faust
from faust.types import EventT

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


class TxnTable(faust.Table):
    """A Faust table written (and restored) in whole per-claim records; see the module doc."""

    _changelog_compacting = False
    _changelog_deleting = False

    def get_value(self, key: str) -> Any:
        """Read without Faust's per-key sensors (this is the engine's hot path)."""
        return self.data.get(key)

    def apply_writes(self, event: EventT, txn_key: str, writes: dict[str, Any]) -> None:
        if not writes:
            return
        partition = event.message.partition
        store = self.data
        key_partition = getattr(store, "_key_partition", None)
        for key, value in writes.items():
            store[key] = value
            if key_partition is not None:
                key_partition[key] = partition
        self.send_changelog(partition, txn_key, {"w": writes})

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        store = self.data
        key_partition = getattr(store, "_key_partition", None)
        for event in batch:
            record = event.value
            if not isinstance(record, dict) or "w" not in record:
                continue  # not one of ours (nothing else writes this changelog)
            partition = event.message.partition
            for key, value in record["w"].items():
                store[key] = value
                if key_partition is not None:
                    key_partition[key] = partition


class TableView:
    """What the overlay reads through: the table's store, without sensors."""

    __slots__ = ("table",)

    def __init__(self, table: TxnTable):
        self.table = table

    def get(self, key: str, default: Any = None) -> Any:
        value = self.table.data.get(key)
        return default if value is None else value
