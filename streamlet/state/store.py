"""The store interface: bytes in, bytes out, with a changelog checkpoint; and how layers stack on it.

A store of one partition is a stack of layers, as in Kafka Streams
(``Metered(Caching(ChangeLogging(RocksDB)))``), built by
:class:`~streamlet.state.builder.StoreBuilder`:

* :class:`~streamlet.state.metered.MeteredStore` — counts flushes, changes and cache misses;
* :class:`~streamlet.state.caching.CachingStore` — decoded values, the write and read cache;
  the only layer that knows the value serde;
* :class:`~streamlet.state.changelogging.ChangeLoggingStore` — sends each change to the
  changelog topic and keeps the checkpoint of what was sent;
* a bottom: :class:`~streamlet.state.rocksdb.RocksDBStore` or
  :class:`~streamlet.state.memory.InMemoryStore`.

Every layer below the cache is a :class:`KeyValueStore` (raw key bytes,
value bytes). A commit goes down the stack in two steps (Kafka Streams'
KIP-892 shape), driven by :mod:`streamlet.runtime.checkpoint`:

1. ``put_all(changes)`` *stages* changes: the logging layer produces their
   changelog records, the bottom holds them, nothing is written yet;
2. ``commit(offsets)``, once the producer has acknowledged those records,
   writes what is staged and the checkpoint (changelog topic → next offset)
   in one atomic write — so local data and checkpoint never disagree, and
   local state is never ahead of its changelog;

or ``rollback()`` drops what is staged (an aborted transaction). A store
with an empty checkpoint is restored from the start of its changelog;
a restore writes the bottom directly (:func:`streamlet.state.restore.restore_store`),
never through the logging layer.

Window, session and sliding stores are these same layers: their steps lay the
keys out in time (a window start or a segment first, see
:mod:`streamlet.topology.window_aggregate` and
:mod:`streamlet.topology.window_segments`) and expire old windows with
:meth:`delete_range` over whole segments, which a bottom applies in the
commit's batch, before the staged changes, with the checkpoint.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Protocol, Sequence, runtime_checkable

Changes = Mapping[bytes, "bytes | None"]


@runtime_checkable
class KeyValueStore(Protocol):
    """One store of one partition, or a layer over one: raw bytes."""

    name: str
    #: the directory of a persistent store, ``None`` for an in-memory one
    path: str | None

    def get(self, key: bytes) -> bytes | None:
        """The committed value of ``key``, or ``None`` (staged changes show only after ``commit``)."""

    def write(self, changes: Changes, offsets: Mapping[str, int] | None = None) -> None:
        """Apply ``changes`` (a ``None`` value deletes) and the checkpoint ``offsets`` in one atomic write."""

    def put_all(self, changes: Changes) -> None:
        """Stage ``changes`` for the next :meth:`commit`."""

    def commit(self, offsets: Mapping[str, int] | None = None) -> None:
        """Write what is staged with the checkpoint ``offsets`` in one atomic write."""

    def rollback(self) -> None:
        """Drop what is staged: the store is as it was at its last commit."""

    def delete_range(self, start: bytes, end: bytes) -> None:
        """Stage the deletion of every key in ``[start, end)`` for the next :meth:`commit`, applied before
        the changes staged after it. Not logged: it expires old windows, whose changelog expires by
        retention (Kafka Streams' window changelogs are ``compact,delete``)."""

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


class Staging:
    """``put_all`` / ``delete_range`` / ``commit`` / ``rollback`` of a bottom store, over its atomic
    ``write(changes, offsets, ranges)`` (range deletions first, then the changes)."""

    _staged: dict[bytes, bytes | None] | None = None
    _ranges: list[tuple[bytes, bytes]] | None = None

    def write(self, changes: Changes, offsets: Mapping[str, int] | None = None,
              ranges: Sequence[tuple[bytes, bytes]] = ()) -> None:
        raise NotImplementedError  # the bottom's own

    def put_all(self, changes: Changes) -> None:
        if self._staged is None:
            self._staged = dict(changes)
        else:
            self._staged.update(changes)

    def delete_range(self, start: bytes, end: bytes) -> None:
        staged = self._staged
        if staged:  # a change staged before the deletion is deleted with its range
            for key in [k for k in staged if start <= k < end]:
                del staged[key]
        if self._ranges is None:
            self._ranges = []
        self._ranges.append((start, end))

    def commit(self, offsets: Mapping[str, int] | None = None) -> None:
        staged, self._staged = self._staged, None
        ranges, self._ranges = self._ranges, None
        if ranges:
            self.write(staged or {}, offsets, ranges)
        elif staged or offsets:
            self.write(staged or {}, offsets)

    def rollback(self) -> None:
        self._staged = None
        self._ranges = None

    @property
    def staged(self) -> int:
        """How many changes wait for the next commit."""
        return len(self._staged) if self._staged else 0
