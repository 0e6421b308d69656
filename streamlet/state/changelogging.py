"""The change-logging layer: every change staged through it is sent to the store's changelog topic.

Kafka Streams' ``ChangeLoggingKeyValueBytesStore``. It owns the changelog
checkpoint: the offset the store was restored to (read from the store below
at the first commit) plus the records it has sent since. At ``commit`` it
passes that checkpoint down with the staged changes, so the store writes
both in one atomic write. That figure is never beyond the changelog's true
end (other writers or transaction markers only make the end higher), which
costs at most a longer restore, never wrong data.

Records are sent, not acknowledged, when :meth:`put_all` returns: the commit
(:mod:`streamlet.runtime.checkpoint`) flushes the producer before it calls
:meth:`commit`. A restore writes the store below directly, never through
this layer.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

from streamlet.state.store import Changes, KeyValueStore

#: ``produce(topic, value, key, partition)``: sends one record (the runtime's changelog produce function)
Produce = Callable[..., None]


class ChangeLoggingStore:
    """Sends the changes staged through it to ``topic`` partition ``partition``; a :class:`KeyValueStore`."""

    def __init__(self, inner: KeyValueStore, topic: str, partition: int, produce: Produce) -> None:
        self.inner = inner
        self.get = inner.get  # a cache miss reads the store below with no call in between
        self.topic = topic
        self.partition = partition
        self.produce = produce
        #: the next changelog offset as of the last commit (None: not read from the store yet)
        self._end: int | None = None
        #: records sent since the last commit
        self.unacked = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def path(self) -> str | None:
        return self.inner.path

    def put_all(self, changes: Changes) -> None:
        """Send one changelog record per change (a ``None`` value: a tombstone), and stage them below."""
        produce, topic, partition = self.produce, self.topic, self.partition
        for key, value in changes.items():
            produce(topic, value, key, partition)
        self.unacked += len(changes)
        self.inner.put_all(changes)

    def commit(self, offsets: Mapping[str, int] | None = None) -> None:
        """Once the records sent are acknowledged: the store writes what is staged and the checkpoint."""
        end = self.end() + self.unacked
        self.inner.commit({**offsets, self.topic: end} if offsets else {self.topic: end})
        self._end, self.unacked = end, 0

    def delete_range(self, start: bytes, end: bytes) -> None:
        """Expire ``[start, end)`` below, with no changelog record (the changelog expires by retention)."""
        self.inner.delete_range(start, end)

    def rollback(self) -> None:
        """The records sent since the last commit do not count (their transaction was aborted)."""
        self.unacked = 0
        self.inner.rollback()

    def end(self) -> int:
        """The changelog offset the store's checkpoint stands at (as of the last commit)."""
        if self._end is None:
            self._end = self.inner.offsets().get(self.topic, 0)
        return self._end

    def write(self, changes: Changes, offsets: Mapping[str, int] | None = None) -> None:
        """:meth:`put_all` then :meth:`commit`: logged, like every write through this layer."""
        self.put_all(changes)
        self.commit(offsets)

    # -- reads and the rest go to the store below -----------------------------------------
    def offsets(self) -> dict[str, int]:
        return self.inner.offsets()

    def items(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        return self.inner.items(start, end)

    def approximate_count(self) -> int:
        return self.inner.approximate_count()

    def clear(self) -> None:
        """Delete the store below, checkpoint included (not logged: the changelog is left as it is)."""
        self.inner.clear()
        self._end, self.unacked = None, 0

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # what only the bottom has (``corrupted``, ``owner``): asked rarely, never on the record path
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"<ChangeLoggingStore {self.name} → {self.topic}[{self.partition}]>"
