"""The record cache: the layer that keeps decoded values, the per-partition write and read cache.

Aggregations read and update the same keys again and again: the cache keeps
decoded values, so a record costs a dict lookup or two, and each changed key
is serialized and passed down once per commit (one changelog record per
changed key). Keys are the raw key bytes. The only layer that knows the
value serde; below it every layer takes bytes (:mod:`streamlet.state.store`).

A commit in two steps (driven by :mod:`streamlet.runtime.checkpoint`):
:meth:`CachingStore.prepare_commit` serializes the changed keys and stages
them in the layer below (which may send them to a changelog);
:meth:`CachingStore.commit` has them written with the checkpoint. Until
then they stay cached (never evicted), so reads see them. :meth:`rollback`
goes back to the last commit: uncommitted keys are forgotten, and read from
the store again when asked for.

Single-threaded: the task's thread owns the cache. Readers on other threads
(interactive queries) use :meth:`peek` and :meth:`items`, which never insert
into it.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from streamlet.errors import SerializationError
from streamlet.state.snapshot import copy_while_written
from streamlet.state.store import KeyValueStore

_MISSING = object()
MISSING = _MISSING  #: what ``hot_path()[0].get(key, MISSING)`` gives for a key not cached


class CachingStore:
    """Decoded values over a byte store; ``put`` marks keys dirty until the next commit."""

    def __init__(self, store: KeyValueStore, value_serde: Any, max_entries: int = 100_000) -> None:
        self.store = store
        self.value_serde = value_serde
        self.max_entries = max_entries
        #: key bytes → decoded value (``None``: absent or deleted); authoritative when present
        self._values: dict[bytes, Any] = {}
        #: keys changed since the last take, in first-change order
        self._dirty: dict[bytes, None] = {}
        #: keys taken by take_changes() and not yet written: not evictable either
        self._pending: dict[bytes, None] = {}
        #: a miss that finds the cache this full evicts (reads alone must not grow it forever)
        self._high_water = max_entries + max_entries // 10
        self._de = value_serde.deserialize
        self._ser = value_serde.serialize
        #: reads that went to the store (a plain counter: the metrics layer reports it at commit)
        self.misses = 0
        #: how many times entries left the cache other than by a rollback (evictions, clear): a key not
        #: cached was never cached since a count seen earlier, or it was dropped by one of these
        self.evictions = 0
        #: ranges deleted since the last commit: the store below still holds their keys until then
        self._deleted: list[tuple[bytes, bytes]] = []

    @property
    def name(self) -> str:
        return self.store.name

    @property
    def inner(self) -> KeyValueStore:
        """The layer below (also ``store``)."""
        return self.store

    # -- the hot path -----------------------------------------------------------------
    def get(self, key: bytes) -> Any:
        """The decoded value of ``key`` or ``None``; a miss reads the store once and caches the answer."""
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            self.misses += 1
            raw = self.store.get(key)
            value = None if raw is None or (self._deleted and self._in_deleted(key)) else self._de(raw)
            values = self._values
            values[key] = value
            if len(values) > self._high_water:
                self._evict(())
        return value

    def put(self, key: bytes, value: Any) -> None:
        """Set ``key`` (``None`` deletes it); serialized and written at the next flush."""
        self._values[key] = value
        self._dirty[key] = None

    def delete_range(self, start: bytes, end: bytes) -> None:
        """Delete every key in ``[start, end)``, cached or not, at the next commit (not logged: window
        expiry); from now on they read as absent. Cost: one pass over the cached keys."""
        values, dirty, pending = self._values, self._dirty, self._pending
        for key in [k for k in values if start <= k < end]:
            del values[key]
            dirty.pop(key, None)
            pending.pop(key, None)
        self._deleted.append((start, end))
        self.store.delete_range(start, end)

    def _in_deleted(self, key: bytes) -> bool:
        return any(start <= key < end for start, end in self._deleted)

    def hot_path(self) -> tuple[dict[bytes, Any], dict[bytes, None]]:
        """``(values, dirty)``: the dicts behind :meth:`get` and :meth:`put`, for a processor that inlines
        them (``values.get(key, MISSING)`` before ``get`` on a miss; ``values[key] = v; dirty[key] = None``
        is ``put``). They keep their identity for the cache's life."""
        return self._values, self._dirty

    # -- commit -----------------------------------------------------------------------
    def prepare_commit(self) -> int:
        """First step of a commit: stage every key changed since the last one, once each, in the store
        below (the logging layer sends them to the changelog). Returns how many."""
        changes = self.take_changes()
        if changes:
            self.store.put_all(dict(changes))
        return len(changes)

    def commit(self, offsets: Mapping[str, int] | None = None) -> None:
        """Second step: the store writes what is staged with the checkpoint ``offsets``, atomically."""
        self.store.commit(offsets)
        written, self._pending = self._pending, {}
        self._deleted = []
        if len(self._values) > self.max_entries:
            self._evict(written)

    def rollback(self) -> None:
        """Back to the last commit: changes not committed are dropped, here and below; their keys are
        forgotten, so the next read of one goes to the store."""
        self.store.rollback()
        values = self._values
        for key in self._dirty:
            values.pop(key, None)
        for key in self._pending:
            values.pop(key, None)
        self._dirty.clear()  # the dicts keep their identity (a processor may hold them, see hot_path)
        self._pending = {}
        self._deleted = []

    def flush(self, offsets: Mapping[str, int] | None = None) -> list[tuple[bytes, bytes | None]]:
        """Both steps at once, with no changelog to wait for: write every key changed since the last
        flush, once each, with ``offsets``, in one store write.

        Returns the changes in first-change order (``None`` value: deleted).
        Clean entries stay cached.
        """
        changes = self.take_changes()
        if changes or offsets:
            self.write(changes, offsets)
        return changes

    def take_changes(self) -> list[tuple[bytes, bytes | None]]:
        """The first half of :meth:`flush`: serialize the changed keys, without writing them yet.

        :meth:`write` is the second half. Taken values
        stay cached (never evicted) until written; a key put in between is
        simply dirty again for the next flush.
        """
        dirty = self._dirty
        if not dirty:
            return []
        values, ser = self._values, self._ser
        try:
            changes = [(key, None if values[key] is None else ser(values[key])) for key in dirty]
        except Exception as exc:
            bad = next(k for k in dirty if not _serializes(ser, values[k]))
            raise SerializationError(
                f"store {self.store.name!r}: the value of key {bad!r} cannot be serialized "
                f"({type(exc).__name__}: {exc}); an aggregate must be serializable by the store's value serde"
            ) from exc
        # the dicts keep their identity (a processor may hold them, see :meth:`hot_path`)
        if self._pending:
            self._pending.update(dirty)
        else:
            self._pending = dict(dirty)
        dirty.clear()
        return changes

    def write(self, changes: list[tuple[bytes, bytes | None]] | Mapping[bytes, bytes | None],
              offsets: Mapping[str, int] | None = None) -> None:
        """The second half of :meth:`flush`: one atomic store write of taken changes and the checkpoint."""
        if not isinstance(changes, Mapping):
            changes = dict(changes)
        self.store.write(changes, offsets)
        self._pending = {}
        if len(self._values) > self.max_entries:
            self._evict(changes)

    def refresh(self, written: Mapping[bytes, Any]) -> None:
        """Decoded values of keys just written to the store below by another path (a global table's
        updater): the keys this cache holds take them, clean (``None``: deleted); others stay uncached."""
        values = self._values
        for key, value in written.items():
            if key in values:
                values[key] = value

    def _evict(self, recent: Any) -> None:
        """Drop clean entries, oldest first, to 90% of ``max_entries``: after a write, or on a miss when
        reads alone filled the cache. Changed values not yet written are never dropped."""
        values, dirty, pending = self._values, self._dirty, self._pending
        for key in recent:  # just written: likely hot, move them to the young end
            if key in values:
                values[key] = values.pop(key)
        excess = len(values) - self.max_entries + self.max_entries // 10
        victims = []
        for key in values:
            if key not in dirty and key not in pending:
                victims.append(key)
                if len(victims) >= excess:
                    break
        for key in victims:
            del values[key]
        if victims:
            self.evictions += 1

    def clear(self) -> None:
        """Forget cached values and pending changes (after a restore wrote the store underneath)."""
        self.evictions += 1
        self._values.clear()
        self._dirty.clear()
        self._pending = {}
        self._deleted = []

    # -- reads that leave the cache alone (any thread) --------------------------------
    def peek(self, key: bytes) -> Any:
        """Like :meth:`get`, without caching a miss: for readers outside the task's thread."""
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            raw = self.store.get(key)
            value = None if raw is None or (self._deleted and self._in_deleted(key)) else self._de(raw)
        return value

    def items(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[tuple[bytes, Any]]:
        """Live entries in key order, ``start`` in, ``end`` out: the store overlaid with the cache."""
        live = self._values
        values = copy_while_written(lambda: dict(live))  # a snapshot: the task may go on meanwhile
        cached = sorted(k for k in values if (start is None or k >= start) and (end is None or k < end))
        de, i, n = self._de, 0, len(cached)
        deleted = copy_while_written(lambda: list(self._deleted))
        for key, raw in self.store.items(start, end):
            if deleted and any(s <= key < e for s, e in deleted) and key not in values:
                continue
            while i < n and cached[i] < key:
                value = values[cached[i]]
                if value is not None:
                    yield cached[i], value
                i += 1
            if i < n and cached[i] == key:
                value = values[key]
                i += 1
            else:
                value = de(raw)
            if value is not None:
                yield key, value
        for key in cached[i:]:
            value = values[key]
            if value is not None:
                yield key, value

    def scan(self, start: bytes, end: bytes | None) -> list[tuple[bytes, Any]]:
        """Live entries with ``start <= key < end`` (``end`` ``None``: no bound), in key order, for the
        task's own thread (a prefix scan on the record path): the store below overlaid with the keys
        changed and not written yet (a clean cached value is the store's). Costs the range plus the
        keys changed since the last commit, never the whole cache."""
        values = self._values
        changed = {k: values[k] for k in (*self._dirty, *self._pending)
                   if k >= start and (end is None or k < end)}
        de = self._de
        out = []
        for key, raw in self.store.items(start, end):
            if key in changed:
                continue
            value = values.get(key, _MISSING)
            out.append((key, de(raw) if value is _MISSING else value))
        if changed:
            out.extend((k, v) for k, v in changed.items() if v is not None)
            out.sort(key=lambda kv: kv[0])
        return out

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def close(self) -> None:
        """Close the store; unflushed changes are dropped (flush first)."""
        self._values.clear()
        self._dirty.clear()
        self._pending = {}
        self.store.close()

    def __repr__(self) -> str:
        return f"<CachingStore {self.store.name}: {len(self._values)} cached, {len(self._dirty)} dirty>"


def _serializes(ser: Any, value: Any) -> bool:
    if value is None:
        return True
    try:
        ser(value)
        return True
    except Exception:
        return False
