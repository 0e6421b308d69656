"""The key-value store protocol: bytes in, bytes out, with a changelog checkpoint.

Stores know nothing of serdes or Kafka; :class:`~streamlet.state.cache.StoreCache`
sits on top with decoded values, the runtime writes the changelog.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Protocol


class KeyValueStore(Protocol):
    """One store of one partition."""

    name: str
    path: str | None

    def get(self, key: bytes) -> bytes | None: ...

    def write(self, changes: Mapping[bytes, bytes | None], offsets: Mapping[str, int] | None = None) -> None:
        """Apply ``changes`` (``None`` deletes) and the checkpoint ``offsets`` in one atomic write."""

    def offsets(self) -> dict[str, int]:
        """The checkpoint: changelog topic → next offset to restore from (empty when new)."""

    def items(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Entries in key-byte order, ``start`` inclusive, ``end`` exclusive."""

    def approximate_count(self) -> int: ...

    def close(self) -> None: ...
