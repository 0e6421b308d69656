"""An in-memory :class:`~streamlet.state.store.KeyValueStore` (TestDriver, ephemeral state)."""

from __future__ import annotations

from bisect import bisect_left
from typing import Iterator, Mapping

from streamlet.state.store import Staging


class InMemoryStore(Staging):
    """A dict; the sorted key list for :meth:`items` is rebuilt only after keys come or go."""

    path = None

    def __init__(self, name: str) -> None:
        self.name = name
        self._data: dict[bytes, bytes] = {}
        self._offsets: dict[str, int] = {}
        self._sorted: list[bytes] | None = None

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def write(self, changes: Mapping[bytes, bytes | None], offsets: Mapping[str, int] | None = None) -> None:
        data = self._data
        size = len(data)
        removed = False
        for key, value in changes.items():
            if value is None:
                removed = data.pop(key, None) is not None or removed
            else:
                data[key] = value
        if removed or len(data) != size:
            self._sorted = None
        if offsets:
            self._offsets.update(offsets)

    def offsets(self) -> dict[str, int]:
        return dict(self._offsets)

    def items(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        if self._sorted is None:
            self._sorted = sorted(self._data)
        keys, data = self._sorted, self._data
        i = 0 if start is None else bisect_left(keys, start)
        stop = len(keys) if end is None else bisect_left(keys, end)
        for key in keys[i:stop]:  # a copy: writes while iterating do not disturb it
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

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<InMemoryStore {self.name}: {len(self._data)} keys>"
