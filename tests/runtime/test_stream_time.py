"""Stream time in the committed offsets' metadata (streamlet.runtime.stream_time)."""

from __future__ import annotations

import base64
import struct
from types import SimpleNamespace

from streamlet.runtime import stream_time


def test_the_metadata_is_kafka_streams_layout() -> None:
    # Kafka Streams' StreamTask.encodeTimestamp: base64 of the version byte 1 and the time as a long
    assert stream_time.encode(1_700_000_000_000) == base64.b64encode(
        b"\x01" + struct.pack(">q", 1_700_000_000_000)).decode()
    assert stream_time.decode(stream_time.encode(5_000)) == 5_000


def test_unknown_metadata_is_unknown_stream_time() -> None:
    for md in (None, "", "not base64!", base64.b64encode(b"\x02" + bytes(8)).decode(),
               base64.b64encode(b"\x01\x00").decode()):
        assert stream_time.decode(md) == -1


def _task(partition: int, topics: set[str], st: int = -1) -> SimpleNamespace:
    return SimpleNamespace(partition=partition, assigned=topics, ctx=SimpleNamespace(stream_time=st))


def test_a_new_task_resumes_from_the_largest_stream_time_committed_with_its_partitions() -> None:
    a, b = _task(0, {"orders", "users"}), _task(1, {"orders"}, st=9_000)
    metadata = {("orders", 0): stream_time.encode(4_000), ("users", 0): stream_time.encode(6_000),
                ("orders", 1): stream_time.encode(7_000)}
    stream_time.resume([a, b], metadata)
    assert a.ctx.stream_time == 6_000 and b.ctx.stream_time == 9_000  # never back


def test_the_committer_gets_each_partitions_task_stream_time() -> None:
    tasks = {("orders", 0): _task(0, {"orders"}, st=1_234), ("orders", 1): _task(1, {"orders"})}
    metadata = stream_time.metadata_of(lambda t, p: tasks.get((t, p)))
    assert stream_time.decode(metadata("orders", 0)) == 1_234
    assert metadata("orders", 1) is None and metadata("gone", 0) is None


def test_an_offset_of_a_task_without_stream_time_is_committed_without_metadata() -> None:
    # a task that has read no record yet (just assigned, say) has no stream time: its offset goes
    # without metadata (confluent-kafka's TopicPartition refuses metadata=None)
    from streamlet.runtime.committer import _with_metadata

    tp = _with_metadata("orders", 1, 42, None)
    assert (tp.topic, tp.partition, tp.offset, tp.metadata) == ("orders", 1, 42, None)
    assert _with_metadata("orders", 0, 7, stream_time.encode(5)).metadata == stream_time.encode(5)
