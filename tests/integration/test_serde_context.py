"""Context serdes in a real worker on the embedded broker: confluent-kafka messages, their headers,
the sink's produce, the changelog of a RocksDB store (tests/serde/test_context.py covers the rest)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.serialization import StringDeserializer, StringSerializer

import streamlet as sl
from tests.integration.procs import app_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Seen:
    """Confluent-style ``(obj, ctx)`` callables that record the context they got, around real ones."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, str, Any]] = []

    def wrap(self, op: str, fn: Any) -> Any:
        def call(obj: Any, ctx: sl.serde.SerializationContext) -> Any:
            with self.lock:
                self.calls.append((op, ctx.topic, str(ctx.field), ctx.headers))
            return fn(obj, ctx)

        return call


def test_a_worker_gives_context_serdes_topic_field_and_headers(tmp_path: Path) -> None:
    seen = Seen()
    key_serde = sl.serde.from_confluent(seen.wrap("ser", StringSerializer()),
                                        seen.wrap("de", StringDeserializer()))
    app = sl.App("ctx-worker", brokers="embedded", state_dir=str(tmp_path), commit_interval_ms=100)
    events = app.stream("events", key_serde=key_serde, value_serde=sl.serde.string())
    events.map_values(str.upper).to("upper", key_serde=key_serde)
    events.group_by_key().count(name="per-key")
    broker = app.embedded_broker()
    for topic in ("events", "upper"):
        broker.create_topic(topic, 2)
    p = Producer({"bootstrap.servers": broker.bootstrap_servers, "partitioner": "murmur2_random"})
    for i in range(10):
        p.produce("events", f"v{i}".encode(), f"k{i % 3}".encode(), headers=[("n", str(i).encode())])
    assert p.flush(10) == 0
    with app_in_thread(app) as errors:
        deadline = time.monotonic() + 30
        while not (app._runner and app._runner.tasks
                   and sum(v for _, v in app.store("per-key").items()) == 10):
            assert time.monotonic() < deadline and not errors, errors
            time.sleep(0.1)
        assert app.store("per-key")["k1"] == 3
        c = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "check",
                      "auto.offset.reset": "earliest"})
        c.subscribe(["upper"])
        out: list[Any] = []
        while len(out) < 10:
            assert time.monotonic() < deadline and not errors, errors
            out += [m for m in c.consume(10, 0.5) if m.error() is None]
        c.close()
    assert not errors
    assert sorted((m.key(), m.value()) for m in out) == sorted(
        (f"k{i % 3}".encode(), f"V{i}".encode()) for i in range(10))
    assert sorted(int(dict(m.headers())["n"]) for m in out) == list(range(10))
    calls = list(seen.calls)
    changelog = "ctx-worker-per-key-changelog"
    # sources: the record's topic and headers, as confluent-kafka hands them over
    reads = [h for op, t, f, h in calls if (op, t, f) == ("de", "events", "key")]
    assert sorted(int(dict(h)["n"]) for h in reads) == list(range(10))
    # the sink: its own topic and the headers the record is written with (the input's)
    writes = [h for op, t, f, h in calls if (op, t, f) == ("ser", "upper", "key")]
    assert sorted(int(dict(h)["n"]) for h in writes) == list(range(10))
    # the store: its changelog topic, no headers (keys are read back by app.store(...).items())
    assert {(op, t, f, h) for op, t, f, h in calls if t == changelog} == {
        ("ser", changelog, "key", None), ("de", changelog, "key", None)}
    assert {t for _, t, _, _ in calls} == {"events", "upper", changelog}
