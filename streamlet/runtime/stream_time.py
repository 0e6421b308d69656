"""Stream time kept across restarts and rebalances, in the committed offsets' metadata.

As Kafka Streams does: each committed input offset carries the task's stream
time (the largest record timestamp it has processed), so that a task that
starts again — after a crash, or on another worker after a rebalance —
goes on from it instead of from "unknown", and stream time never goes back.
The metadata is Kafka Streams' own layout (base64 of a version byte 1 and
the time as 8 big-endian bytes), so either engine can read the other's.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Any, Callable, Iterable

_V1 = struct.Struct(">bq")
Key = tuple[str, int]


def encode(stream_time: int) -> str:
    """The commit metadata of a stream time."""
    return base64.b64encode(_V1.pack(1, stream_time)).decode()


def decode(metadata: str | None) -> int:
    """The stream time in commit metadata; -1 (unknown) for none, another version or other data."""
    if not metadata:
        return -1
    try:
        raw = base64.b64decode(metadata, validate=True)
    except (binascii.Error, ValueError):
        return -1
    if len(raw) < _V1.size or raw[0] != 1:
        return -1
    return int(_V1.unpack_from(raw)[1])


def metadata_of(task_of: Callable[[str, int], Any]) -> Callable[[str, int], str | None]:
    """For the committer: the metadata of a partition's committed offset (its task's stream time)."""
    def metadata(topic: str, partition: int) -> str | None:
        task = task_of(topic, partition)
        if task is None or task.ctx.stream_time < 0:
            return None
        return encode(task.ctx.stream_time)

    return metadata


def resume(tasks: Iterable[Any], metadata: dict[Key, str | None]) -> None:
    """Newly created tasks take the stream time committed with their partitions (the largest)."""
    for task in tasks:
        for topic in task.assigned:
            committed = decode(metadata.get((topic, task.partition)))
            if committed > task.ctx.stream_time:
                task.ctx.stream_time = committed
