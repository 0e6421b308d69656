"""A table–table join in a worker (`app.run()` against each broker): both tables' partitions in one
task, RocksDB stores restored from their topics, and the joined table's final rows as a TestDriver
run of the same records gives them."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

import streamlet as sl
from tests.integration.kafka_io import end_offsets, latest_per_key, produce
from tests.integration.procs import app_in_thread
from tests.integration.test_restoring_tasks import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PARTITIONS = 2


def joiner(u: Any, a: Any) -> dict[str, Any]:
    return {"city": None if u is None else u["city"], "plan": None if a is None else a["plan"]}


def build(app: sl.App) -> None:
    app.table("users").outer_join(app.table("accounts"), joiner, name="plans").to_stream().to("plans")


def records(seed: int) -> list[tuple[str, str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(400):
        key = f"u{rnd.randrange(20)}"
        if rnd.random() < 0.5:
            out.append(("users", key, None if rnd.random() < 0.15 else {"city": f"c{i}"}))
        else:
            out.append(("accounts", key, None if rnd.random() < 0.15 else {"plan": f"p{i}"}))
    return out


def test_an_outer_join_in_a_worker_ends_with_the_rows_the_test_driver_computes(tmp_path: Path, broker) -> None:
    for t in ("users", "accounts", "plans"):
        broker.create_topic(t, PARTITIONS)
    recs = records(7)
    # each key's records go to one partition of each topic (murmur2), in order
    for topic, key, value in recs:
        produce(broker.bootstrap, topic, [(key, value)])
    reference = sl.App("tt-ref")
    build(reference)
    with sl.testing.TestDriver(reference) as d:
        for topic, key, value in recs:
            d.send(topic, key=key, value=value)
        expected: dict[str, Any] = {}
        for key, value in d.read("plans"):
            expected[key] = value
    app = sl.App("tt-worker", brokers=broker.bootstrap, state_dir=str(tmp_path), commit_interval_ms=100,
                 config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    build(app)
    with app_in_thread(app) as errors:
        wait_for(lambda: sum(end_offsets(broker.bootstrap, "plans", PARTITIONS).values()) >= len(expected),
                 errors, "the joined rows", timeout=60)
        wait_for(lambda: latest_per_key(broker.bootstrap, "plans", PARTITIONS) == expected, errors,
                 "the final joined rows", timeout=60)
    assert not errors
    assert any(v is None for v in expected.values()) and any(v and v["city"] and v["plan"]
                                                              for v in expected.values())
