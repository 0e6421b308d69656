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


SCRIPT = """
import os
import time

import streamlet as sl

SLOW_S = float(os.environ.get("TEST_SLOW_S", "0"))


def joiner(u, a):
    if SLOW_S:
        time.sleep(SLOW_S)
    return {"city": None if u is None else u["city"], "plan": None if a is None else a["plan"]}


app = sl.App("tt-kill")
app.table("users").outer_join(app.table("accounts"), joiner, name="plans").to_stream().to("plans")
"""


def test_three_workers_with_one_killed_end_with_the_rows_of_an_uninterrupted_run(tmp_path: Path, broker,
                                                                                 report) -> None:
    import signal
    import textwrap

    from tests.integration.kafka_io import Follower, committed, wait_committed
    from tests.integration.procs import Worker, wait_until

    partitions = 4
    for t in ("users", "accounts", "plans"):
        broker.create_topic(t, partitions)
    script = tmp_path / "tt_kill.py"
    script.write_text(textwrap.dedent(SCRIPT))
    recs = records(11) + records(12)
    half = len(recs) // 2
    reference = sl.App("tt-ref")
    build(reference)
    with sl.testing.TestDriver(reference, partitions=partitions) as d:
        for topic, key, value in recs:
            d.send(topic, key=key, value=value)
        expected: dict[str, Any] = {}
        for key, value in d.read("plans"):
            expected[key] = value

    def produce_all(part: list[tuple[str, str, Any]]) -> None:
        for topic in ("users", "accounts"):
            produce(broker.bootstrap, topic, [(k, v) for t, k, v in part if t == topic])

    slow = {"TEST_SLOW_S": "0.01"}
    workers = [Worker(tmp_path, script, broker.bootstrap, tmp_path / f"state-{n}", n, env=slow)
               for n in ("w1", "w2", "w3")]
    produce_all(recs[:half])
    for topic in ("users", "accounts"):
        wait_committed(broker.bootstrap, "tt-kill", topic, partitions, 120, workers)
    with Follower(broker.bootstrap, "plans", partitions) as out:
        seen = len(out.poll())
        produce_all(recs[half:])
        wait_until(lambda: len(out.poll()) > seen + 20, 60, "outputs of the second half", workers=workers)
    workers[0].stop(signal.SIGKILL)  # mid-run: records processed since its last commit come again
    at_kill = sum(max(o, 0) for t in ("users", "accounts")
                  for o in committed(broker.bootstrap, "tt-kill", t, partitions).values())
    workers[0] = Worker(tmp_path, script, broker.bootstrap, tmp_path / "state-w1", "w1-again")
    for topic in ("users", "accounts"):
        wait_committed(broker.bootstrap, "tt-kill", topic, partitions, 180, workers)
    assert [w.stop() for w in workers] == [0, 0, 0]
    assert latest_per_key(broker.bootstrap, "plans", partitions) == expected
    report(f"table–table join: one of 3 workers SIGKILLed with {at_kill} of {len(recs)} inputs committed; "
           f"{len(expected)} final rows as in an uninterrupted run")
