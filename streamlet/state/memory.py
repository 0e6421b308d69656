"""An in-memory :class:`~streamlet.state.store.KeyValueStore` (TestDriver, ephemeral state)."""

from __future__ import annotations

from bisect import bisect_left
from typing import Iterator, Mapping, Sequence

from streamlet.state.snapshot import copy_while_written
from streamlet.state.store import Staging


class InMemoryStore(Staging):
    """A dict; the sorted key list for :meth:`items` is rebuilt only after keys come or go."""

    path = None

    def __init__(self, name: str) -> None:
        self.name = name
        self._data: dict[bytes, bytes] = {}
        self._offsets: dict[str, int] = {}
        #: bumped by the writing thread after keys came or went (after the change, not before)
        self._keys_version = 0
        #: the sorted keys and the ``_keys_version`` they were read at: a list sorted while keys changed
        #: (a reader on another thread) carries an older version and is never used again
        self._sorted: tuple[int, list[bytes]] | None = None

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def write(self, changes: Mapping[bytes, bytes | None], offsets: Mapping[str, int] | None = None,
              ranges: Sequence[tuple[bytes, bytes]] = ()) -> None:
        data = self._data
        size = len(data)
        removed = False
        for start, end in ranges:
            for key in self._range(start, end):
                del data[key]
                removed = True
            self._keys_version += 1
        for key, value in changes.items():
            if value is None:
                removed = data.pop(key, None) is not None or removed
            else:
                data[key] = value
        if removed or len(data) != size:
            self._keys_version += 1
        if offsets:
            self._offsets.update(offsets)

    def offsets(self) -> dict[str, int]:
        return dict(self._offsets)

    def _range(self, start: bytes | None, end: bytes | None) -> list[bytes]:
        """The keys in ``[start, end)``, sorted (a copy)."""
        version = self._keys_version  # before the keys are read
        cached = self._sorted
        if cached is None or cached[0] != version:
            data = self._data
            cached = self._sorted = (version, copy_while_written(lambda: sorted(data)))
        keys = cached[1]
        i = 0 if start is None else bisect_left(keys, start)
        stop = len(keys) if end is None else bisect_left(keys, end)
        return keys[i:stop]

    def items(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        data = self._data
        for key in self._range(start, end):  # a copy: writes while iterating do not disturb it
            value = data.get(key)
            if value is not None:
                yield key, value

    def approximate_count(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._staged = None
        self._data = {}
        self._offsets = {}
        self._sorted = None
        self._keys_version += 1

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<InMemoryStore {self.name}: {len(self._data)} keys>"
