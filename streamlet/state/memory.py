"""An in-memory :class:`~streamlet.state.store.KeyValueStore` (TestDriver, ephemeral state)."""

from __future__ import annotations

from typing import Iterator, Mapping


class InMemoryStore:
    """A dict; items() sorts on demand. Nothing survives the process."""

    path = None

    def __init__(self, name: str) -> None:
        self.name = name
        self._data: dict[bytes, bytes] = {}
        self._offsets: dict[str, int] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def write(self, changes: Mapping[bytes, bytes | None], offsets: Mapping[str, int] | None = None) -> None:
        data = self._data
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        if offsets:
            self._offsets.update(offsets)

    def offsets(self) -> dict[str, int]:
        return dict(self._offsets)

    def items(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(self._data):
            if start is not None and key < start:
                continue
            if end is not None and key >= end:
                break
            yield key, self._data[key]

    def approximate_count(self) -> int:
        return len(self._data)

    def close(self) -> None:
        pass
