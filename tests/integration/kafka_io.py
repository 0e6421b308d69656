"""Kafka clients for integration tests: produce, end offsets, committed offsets, read back."""

from __future__ import annotations

import time
from typing import Any, Iterable

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from tests.integration.procs import Worker, wait_until


def produce(bootstrap: str, topic: str, records: list[tuple[str, Any]], **config: Any) -> None:
    """Produce JSON values (bytes values are sent as they are); waits for every acknowledgement.

    ``config``: more producer settings, dots spelled as underscores (``batch_num_messages=10``).
    """
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random",
                  **{k.replace("_", "."): v for k, v in config.items()}})
    for key, value in records:
        body = value if isinstance(value, bytes) else orjson.dumps(value)
        while True:
            try:
                p.produce(topic, body, key.encode())
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0, f"not every record reached {topic}"


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The true end of each partition: the high watermark of a fetch response.

    ListOffsets alone is wrong on Tansu (start of the last batch + 1), so read
    from just before it and take the high watermark the fetch reports.
    """
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe", "enable.auto.commit": False,
                  "fetch.queue.backoff.ms": 10, "fetch.wait.max.ms": 50})
    try:
        listed = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)}
        c.assign([TopicPartition(topic, p, max(hi - 1, lo, 0)) for p, (lo, hi) in listed.items()])
        ends: dict[int, int] = {}
        deadline = time.monotonic() + 10
        while len(ends) < partitions and time.monotonic() < deadline:
            c.consume(1000, 0.1)
            for p in range(partitions):
                if p not in ends:
                    hi = c.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]
                    if hi >= 0:
                        ends[p] = hi
        for p, (lo, hi) in listed.items():
            ends.setdefault(p, hi)
        return ends
    finally:
        c.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset of each partition (negative: none). A broker that has just
    started may not coordinate the group yet (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS): asked
    again, for up to 10 s."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
                return {tp.partition: tp.offset for tp in tps}
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                retriable = isinstance(err, KafkaError) and err.code() in (
                    KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                    KafkaError.COORDINATOR_NOT_AVAILABLE)
                if not retriable or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        c.close()


def wait_committed(bootstrap: str, group: str, topic: str, partitions: int, deadline_s: float,
                   workers: Iterable[Worker] = ()) -> dict[int, int]:
    """Wait until the group committed the end of every partition of ``topic``; the end offsets."""
    ends = end_offsets(bootstrap, topic, partitions)
    last: dict[int, int] = {}

    def done() -> bool:
        last.update(committed(bootstrap, group, topic, partitions))
        return all(end == 0 or last[p] == end for p, end in ends.items())

    wait_until(done, deadline_s, f"group {group} to commit the end of {topic} {ends}", workers=workers,
               detail=lambda: f"committed: {last}", interval=0.3)
    return ends


def read_all(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    """Every message of ``topic`` from the start to its current end (confluent Message objects)."""
    ends = end_offsets(bootstrap, topic, partitions)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "fetch.queue.backoff.ms": 10})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[Any] = []
    want = sum(ends.values())
    deadline = time.monotonic() + 60
    try:
        while len(out) < want and time.monotonic() < deadline:
            out.extend(m for m in c.consume(10_000, 0.5) if m.error() is None)
    finally:
        c.close()
    assert len(out) >= want, f"read {len(out)} of {want} records of {topic}"
    return out


def read_committed(bootstrap: str, topic: str, partitions: int, deadline_s: float = 60) -> list[Any]:
    """Every committed message of ``topic`` (a topic transactions write: aborted records and commit
    markers take offsets but are not delivered), read until each partition reports its end."""
    ends = end_offsets(bootstrap, topic, partitions)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "enable.partition.eof": True,
                  "fetch.queue.backoff.ms": 10})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[Any] = []
    done = {p for p, end in ends.items() if end <= 0}
    deadline = time.monotonic() + deadline_s
    try:
        while len(done) < partitions:
            assert time.monotonic() < deadline, f"read {len(out)} records of {topic}; ends {ends}, done {done}"
            for m in c.consume(10_000, 0.5):
                err = m.error()
                if err is None:
                    out.append(m)
                elif err.code() == KafkaError._PARTITION_EOF and m.offset() >= ends[m.partition()]:
                    done.add(m.partition())
    finally:
        c.close()
    return out


class Follower:
    """Reads a topic from the start while a test runs: ``poll()`` returns what arrived so far."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "follower",
                                  "enable.auto.commit": False, "fetch.queue.backoff.ms": 10,
                                  "fetch.wait.max.ms": 50})
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.messages: list[Any] = []

    def poll(self) -> list[Any]:
        self.messages.extend(m for m in self.consumer.consume(10_000, 0.1) if m.error() is None)
        return self.messages

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> "Follower":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def latest_per_key(bootstrap: str, topic: str, partitions: int) -> dict[str, Any]:
    """Read ``topic`` from the start: the last JSON value of every key."""
    ends = end_offsets(bootstrap, topic, partitions)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "fetch.queue.backoff.ms": 10})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: dict[str, Any] = {}
    done = {p for p, e in ends.items() if e == 0}
    deadline = time.monotonic() + 60
    try:
        while len(done) < partitions and time.monotonic() < deadline:
            for m in c.consume(10_000, 0.5):
                if m.error():
                    continue
                out[m.key().decode()] = None if m.value() is None else orjson.loads(m.value())
                if m.offset() + 1 >= ends[m.partition()]:
                    done.add(m.partition())
    finally:
        c.close()
    assert len(done) == partitions, f"could not read {topic} to its end {ends}"
    return out
