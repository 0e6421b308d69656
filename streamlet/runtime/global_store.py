"""One global table's store: the records of its topic applied in order, with a checkpoint per partition.

Used by the runtime's global state (:mod:`streamlet.runtime.global_state`) and by the
TestDriver alike. A global store has no changelog: its topic is its changelog, and the
store's checkpoint holds the next offset of every partition of that topic
(``<topic>/<partition>``), written in the same store write as the rows of the
records before it, so rows and checkpoint never disagree after a crash.

Every record is deserialized before it is applied (the store keeps the
topic's bytes): a record without a key, or one its serdes cannot read, is a
bad record under the app's ``on_error`` (``fail`` raises
:class:`~streamlet.errors.RecordError` naming topic, partition and offset, after the
rows and checkpoint of the records before it were written; ``skip`` and
``dead_letter`` go on past it). A ``None`` value (a tombstone) deletes the key.
"""

from __future__ import annotations

from typing import Any, Iterable

from streamlet.errors import StreamletError
from streamlet.serde.context import KEY, VALUE, deserializer_for
from streamlet.state.builder import bottom_of
from streamlet.topology.graph import StoreSpec


class GlobalTableKeyError(StreamletError):
    """A record of a global table's topic without a key (a table row needs one)."""


def source_serde(serde: Any) -> Any:
    """The serde a store spec was given (a store binds a context serde to its changelog topic)."""
    return getattr(serde, "serde", serde) if type(serde).__name__ == "TopicSerde" else serde


def checkpoint_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class GlobalStore:
    """The rows of one global table: ``apply(messages)`` writes records of its topic, in offset order
    per partition; ``checkpoint()`` tells where each partition goes on."""

    def __init__(self, spec: StoreSpec, cache: Any, policy: Any) -> None:
        self.spec = spec
        self.name = spec.name
        self.topic = spec.changelog
        self.cache = cache
        self.bottom = bottom_of(cache)
        self.policy = policy
        self._kde = deserializer_for(source_serde(spec.key_serde), self.topic, KEY)
        self._vde = deserializer_for(source_serde(spec.value_serde), self.topic, VALUE)
        #: records applied (bad ones not counted) since the store was opened
        self.applied = 0

    def checkpoint(self) -> dict[int, int]:
        """Partition → the next offset to read (only partitions with a checkpoint)."""
        prefix = self.topic + "/"
        out = {}
        for key, offset in self.bottom.offsets().items():
            if key.startswith(prefix) and key[len(prefix):].isdigit():
                out[int(key[len(prefix):])] = offset
        return out

    def clear(self) -> None:
        """Forget every row and the checkpoint (the next load reads the topic from its start)."""
        self.cache.clear()
        self.bottom.clear()

    def apply(self, msgs: Iterable[Any]) -> int:
        """Apply data records of this store's topic (no error events); returns how many were applied."""
        kde, vde, topic = self._kde, self._vde, self.topic
        changes: dict[bytes, bytes | None] = {}
        decoded: dict[bytes, Any] = {}
        offsets: dict[str, int] = {}
        n = 0
        for m in msgs:
            ck = checkpoint_key(topic, m.partition())
            kb, vb = m.key(), m.value()
            stage = "process"
            try:
                if kb is None:
                    raise GlobalTableKeyError(f"a record of global table topic {topic!r} has no key; a table "
                                              "row needs one")
                stage = "deserialize"
                headers = m.headers()
                kde(kb, headers)
                value = vde(vb, headers)
            except Exception as exc:
                offsets[ck] = m.offset()  # what came before is applied; this record is not (yet)
                self._write(changes, decoded, offsets)
                changes, decoded, offsets = {}, {}, {}
                self.policy.handle(m, exc, stage)  # raises RecordError under on_error='fail'
                offsets[ck] = m.offset() + 1
                continue
            changes[kb] = vb
            decoded[kb] = value
            offsets[ck] = m.offset() + 1
            n += 1
        self._write(changes, decoded, offsets)
        self.applied += n
        return n

    def _write(self, changes: dict[bytes, bytes | None], decoded: dict[bytes, Any],
               offsets: dict[str, int]) -> None:
        if changes or offsets:
            self.bottom.write(changes, offsets)
            self.cache.refresh(decoded)
