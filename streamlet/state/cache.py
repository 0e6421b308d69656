"""The per-partition write cache in front of a store, which is also its read cache.

Aggregations read and update the same keys again and again: the cache keeps
decoded values so a record costs a dict lookup, and writes each changed key
once per commit (one changelog record per changed key, DESIGN §3).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from streamlet.state.store import KeyValueStore

_MISSING = object()


class StoreCache:
    """Decoded values over a byte store; ``put`` marks keys dirty until :meth:`take_changes`."""

    def __init__(self, store: KeyValueStore, value_serde: Any, max_entries: int = 100_000) -> None:
        self.store = store
        self.value_serde = value_serde
        self.max_entries = max_entries
        self._values: dict[bytes, Any] = {}
        self._dirty: dict[bytes, None] = {}
        self._de = value_serde.deserialize
        self._ser = value_serde.serialize

    def get(self, key: bytes) -> Any:
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            raw = self.store.get(key)
            value = None if raw is None else self._de(raw)
            self._values[key] = value
        return value

    def put(self, key: bytes, value: Any) -> None:
        """Set ``key`` (``None`` deletes it); written at the next commit."""
        self._values[key] = value
        self._dirty[key] = None

    def take_changes(self) -> list[tuple[bytes, bytes | None]]:
        """Serialize every key changed since the last call, once each; they stay cached."""
        if not self._dirty:
            return []
        values, ser = self._values, self._ser
        changes = [(key, ser(values[key])) for key in self._dirty]
        self._dirty = {}
        return changes

    def write(self, changes: list[tuple[bytes, bytes | None]] | Mapping[bytes, bytes | None],
              offsets: Mapping[str, int] | None = None) -> None:
        """Write taken changes and the checkpoint in one atomic store write, then trim the cache."""
        self.store.write(dict(changes), offsets)
        self._evict()

    def flush(self, offsets: Mapping[str, int] | None = None) -> list[tuple[bytes, bytes | None]]:
        """:meth:`take_changes` and :meth:`write` in one go; returns the changes."""
        changes = self.take_changes()
        if changes or offsets:
            self.write(changes, offsets)
        return changes

    def _evict(self) -> None:
        excess = len(self._values) - self.max_entries
        if excess <= 0:
            return
        # oldest entries first (dict order); dirty ones must stay until written
        victims = [k for k in self._values if k not in self._dirty][: excess + self.max_entries // 10]
        for key in victims:
            del self._values[key]

    def items(self) -> Iterator[tuple[bytes, Any]]:
        """Every live entry in key order: the store overlaid with the cache."""
        stored = {k for k, _ in self.store.items()}
        for key in sorted(stored | self._values.keys()):
            value = self.get(key)
            if value is not None:
                yield key, value

    def clear(self) -> None:
        """Forget cached values (after a restore wrote the store underneath)."""
        self._values = {}
        self._dirty = {}

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def close(self) -> None:
        self.store.close()
