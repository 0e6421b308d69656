"""``Runner._loop`` with generated runs: same outputs, same error handling as record by record.

A fake consumer hands the loop batches that mix partitions, topics, error
events and bad records; a fake producer records what is produced. The loop
runs once with generated chains (runs per partition) and once with closures
(one call per record), and both must write the same records in the same
order and apply the error policy to the same records.
"""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import RecordError
from streamlet.record import RecordMessage
from streamlet.runtime.error_policy import ErrorPolicy
from streamlet.runtime.runner import Runner
from streamlet.runtime.task_manager import TaskManager
from streamlet.topology import codegen


class ErrorEvent:
    """A consumer error event (partition EOF) carrying a topic and partition, like librdkafka's."""

    def __init__(self, topic: str, partition: int) -> None:
        self._topic, self._partition = topic, partition

    def error(self) -> Any:
        from confluent_kafka import KafkaError

        return KafkaError(KafkaError._PARTITION_EOF)

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def key(self) -> bytes:
        return b"not a record"

    def value(self) -> bytes:
        return b"not a record"


class FakeConsumer:
    def __init__(self, app: sl.App, batches: list[list[Any]]) -> None:
        self.app, self.batches = app, list(batches)

    def consume(self, n: int, timeout: float) -> list[Any]:
        if not self.batches:
            self.app.stop()
            return []
        return self.batches.pop(0)

    def assignment(self) -> list[Any]:
        return []

    def position(self, partitions: list[Any]) -> list[Any]:
        return []


class FakeCommitter:
    def __init__(self) -> None:
        self.tracked: dict[tuple[str, int], int] = {}

    def track_positions(self, positions: Any) -> None:
        pass

    def track(self, topic: str, partition: int, offset: int) -> None:
        self.tracked[(topic, partition)] = offset

    def maybe_commit(self) -> None:
        pass


class Sent:
    """A produce function with the client's raw positional produce behind it (as in the runtime)."""

    def __init__(self, full_every: int = 0) -> None:
        self.records: list[tuple[Any, ...]] = []
        self.full_every = full_every
        self.calls = 0

        def raw(topic: str, value: Any, key: Any, partition: int, cb: Any, on_delivery: Any,
                timestamp: int, headers: Any) -> None:
            self.calls += 1
            if self.full_every and self.calls % self.full_every == 0:
                raise BufferError("queue full")
            self.records.append((topic, value, key, partition, timestamp, headers))

        def produce(topic: str, value: Any, key: Any, partition: int = -1, timestamp: int = 0,
                    headers: Any = None) -> None:
            self.records.append((topic, value, key, partition, timestamp, headers))

        produce.raw = raw  # type: ignore[attr-defined]
        self.produce = produce


def _msg(topic: str, partition: int, offset: int, key: str | None, value: bytes | None,
         ts: int = 100) -> RecordMessage:
    return RecordMessage(topic, partition, offset, ts, None, None if key is None else key.encode(), value)


def _batches() -> list[list[Any]]:
    b1 = [_msg("orders", 0, i, f"k{i}", b'{"n": %d}' % i) for i in range(4)]
    b1 += [_msg("orders", 1, 0, "x", b'{"n": 7}'), _msg("refunds", 1, 0, "r", b'{"n": 9}'),
           _msg("orders", 1, 1, "y", b"{bad json"), _msg("orders", 1, 2, "z", b'{"n": 5}')]
    b1 += [ErrorEvent("orders", 1), _msg("orders", 1, 3, None, None), _msg("orders", 0, 4, "k4", b'{"n": 3}')]
    b2 = [_msg("orders", 2, 0, "q", b'{"n": 13}'), _msg("orders", 2, 1, "q", b'{"n": 2}'),
          _msg("orders", 9, 0, "revoked", b'{"n": 1}'), _msg("orders", 2, 2, "q", b'{"n": 4}')]
    return [b1, [], b2]


def _build(app: sl.App, topics: tuple[str, ...]) -> None:
    def check(v: Any) -> Any:
        if v is not None and v["n"] == 13:
            raise ValueError("unlucky")
        return v

    for topic in topics:
        s = app.stream(topic)
        s.map_values(check).filter(lambda k, v: v is None or v["n"] != 3).to(f"{topic}-out")
        s.flat_map_values(lambda v: [v, v]).to(f"{topic}-twice")


def _run(generated: bool, topics: tuple[str, ...], policy: str, full_every: int = 0) -> tuple[Any, ...]:
    old = codegen.enabled
    codegen.enabled = generated
    try:
        app = sl.App("loop-test", on_error=policy)
        _build(app, topics)
        sent = Sent(full_every)
        runner = Runner(app)
        runner.consumer = FakeConsumer(app, [[m for m in b if m.topic() in topics] for b in _batches()])
        runner.committer = FakeCommitter()  # type: ignore[assignment]
        runner.fatal = None
        runner.policy = ErrorPolicy(policy, app.config.dead_letter, sent.produce)
        parts = {t: 3 for t in topics}
        runner.tasks = TaskManager(app.topology, sent.produce, parts)
        runner.tasks.assign((t, p) for t in topics for p in range(3))
        error = None
        try:
            runner._loop()
        except RecordError as exc:
            error = (exc.topic, exc.partition, exc.offset, exc.stage)
        return sent.records, error, runner.committer.tracked, runner.policy.skipped, runner.processed
    finally:
        codegen.enabled = old


@pytest.mark.parametrize("topics", [("orders",), ("orders", "refunds")])
@pytest.mark.parametrize("policy", ["skip", "dead_letter", "fail"])
def test_runs_match_record_by_record(topics: tuple[str, ...], policy: str) -> None:
    generated = _run(True, topics, policy)
    closures = _run(False, topics, policy)
    assert generated == closures
    records, error, tracked, skipped, processed = generated
    if policy == "fail":
        assert error == ("orders", 1, 1, "deserialize")
        assert tracked[("orders", 1)] == 1 and tracked[("orders", 0)] == 4
    else:
        assert error is None
        assert skipped == (2 if policy == "skip" else 0)
        outs = [r for r in records if r[0] == "orders-out"]
        # n == 3 is filtered out, n == 13 fails, the bad JSON fails, partition 9 is not assigned
        assert [r[2] for r in outs] == [b"k0", b"k1", b"k2", b"x", b"z", None, b"q", b"q"]
        assert processed == 14 + (1 if "refunds" in topics else 0)  # error events included
        assert b"revoked" not in {r[2] for r in records}


def test_full_queue_falls_back_to_the_waiting_produce() -> None:
    assert _run(True, ("orders",), "skip", full_every=3)[0] == _run(False, ("orders",), "skip")[0]
