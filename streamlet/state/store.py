"""The key-value store protocol: bytes in, bytes out, with a changelog checkpoint.

Stores know nothing of serdes or Kafka; :class:`~streamlet.state.cache.StoreCache`
sits on top with decoded values, the runtime writes the changelog.

The checkpoint (changelog topic → next offset to restore from) is part of
the store and is written in the same atomic write as the data it describes,
so that data and checkpoint can never disagree: a store with an empty
checkpoint is restored from the start of its changelog.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Protocol, runtime_checkable


@runtime_checkable
class KeyValueStore(Protocol):
    """One store of one partition."""

    name: str
    #: the directory of a persistent store, ``None`` for an in-memory one
    path: str | None

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or ``None``."""

    def write(self, changes: Mapping[bytes, bytes | None], offsets: Mapping[str, int] | None = None) -> None:
        """Apply ``changes`` (a ``None`` value deletes) and the checkpoint ``offsets`` in one atomic write."""

    def offsets(self) -> dict[str, int]:
        """The checkpoint: changelog topic → next offset to restore from (empty when new)."""

    def items(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Entries in key-byte order, ``start`` inclusive, ``end`` exclusive."""

    def approximate_count(self) -> int:
        """About how many keys the store holds (cheap; RocksDB's estimate counts overwrites)."""

    def clear(self) -> None:
        """Delete every entry and the checkpoint (the store is then new)."""

    def close(self) -> None:
        """Release the store; it must not be used afterwards. Calling it twice is harmless."""
