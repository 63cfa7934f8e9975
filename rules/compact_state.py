"""The engine's running state for a replay or a what-if held in one process: a mapping whose
claim entries (``["claim", ...]``, one per decided event) are kept pickled.

A decided claim's entry (its decision and instructions in wire form, for a repeat and a refund)
took ~5 KB of dicts and strings in a plain dict, four times its pickled size, and each of its
containers was scanned by the collector as the state grew; the engine reads it back only for a
repeat or a refund. Caps and counters, read on every claim, stay plain. Values read back are
equal to the values written, as from the workers' serialising tables, and the engine never
changes a value in place (rules/engine.py writes a new one).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, MutableMapping
from typing import Any

_CLAIM = '["claim"'


class CompactState(MutableMapping[str, Any]):
    def __init__(self) -> None:
        self._plain: dict[str, Any] = {}
        self._packed: dict[str, bytes] = {}

    def __getitem__(self, key: str) -> Any:
        packed = self._packed.get(key)
        return pickle.loads(packed) if packed is not None else self._plain[key]

    def get(self, key: str, default: Any = None) -> Any:
        packed = self._packed.get(key)
        return pickle.loads(packed) if packed is not None else self._plain.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        if key.startswith(_CLAIM):
            self._packed[key] = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            self._plain[key] = value

    def __delitem__(self, key: str) -> None:
        if key.startswith(_CLAIM):
            del self._packed[key]
        else:
            del self._plain[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._plain
        yield from self._packed

    def __len__(self) -> int:
        return len(self._plain) + len(self._packed)
