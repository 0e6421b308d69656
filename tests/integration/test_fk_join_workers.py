"""Foreign-key table–table joins in a worker (`app.run()` against each broker), the left and right
tables with different partition counts: subscriptions and responses go through their internal topics,
created at start with the right and the left table's partition counts; a second worker, with a new
state directory, restores the subscription and result stores from their changelogs and goes on.
The joined tables end with the rows a TestDriver run of the same records gives."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

import streamlet as sl
from tests.integration.kafka_io import end_offsets, latest_per_key, produce
from tests.integration.procs import app_in_thread
from tests.integration.test_restoring_tasks import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ORDERS, CUSTOMERS, OUT = 3, 2, 2  # partition counts: the two tables differ


def joiner(o: Any, c: Any) -> dict[str, Any]:
    return {"n": o["n"], "tier": None if c is None else c["tier"]}


def build(app: sl.App) -> None:
    orders, customers = app.table("orders"), app.table("customers")
    fk = lambda o: o["customer"]  # noqa: E731
    orders.join(customers, joiner, foreign_key=fk, name="inner").to_stream().to("inner")
    orders.left_join(customers, joiner, foreign_key=fk, name="left").to_stream().to("left")


def records(seed: int, n: int = 300) -> list[tuple[str, str, Any]]:
    rnd = random.Random(seed)
    out: list[tuple[str, str, Any]] = []
    for i in range(n):
        if rnd.random() < 0.6:
            customer = None if rnd.random() < 0.1 else f"c{rnd.randrange(8)}"
            value = None if rnd.random() < 0.15 else {"customer": customer, "n": i}
            out.append(("orders", f"o{rnd.randrange(25)}", value))
        else:
            value = None if rnd.random() < 0.15 else {"tier": f"t{i}"}
            out.append(("customers", f"c{rnd.randrange(8)}", value))
    return out


def final_rows(pairs: Any) -> dict[str, Any]:
    """The joined table: the last value per key, a tombstone meaning no row."""
    rows: dict[str, Any] = {}
    for key, value in pairs:
        rows[key] = value
    return {k: v for k, v in rows.items() if v is not None}


def test_foreign_key_joins_in_a_worker_end_with_the_rows_the_test_driver_computes(tmp_path: Path,
                                                                                    broker) -> None:
    broker.create_topic("orders", ORDERS)
    broker.create_topic("customers", CUSTOMERS)
    for t in ("inner", "left"):
        broker.create_topic(t, OUT)
    recs = records(5)
    half = len(recs) // 2
    reference = sl.App("fk-ref")
    build(reference)
    with sl.testing.TestDriver(reference) as d:
        for topic, key, value in recs:
            d.send(topic, key=key, value=value)
        expected = {t: final_rows(d.read(t)) for t in ("inner", "left")}

    with sl.testing.TestDriver(reference) as d:
        for topic, key, value in recs[:half]:
            d.send(topic, key=key, value=value)
        expected_half = {t: final_rows(d.read(t)) for t in ("inner", "left")}

    def produce_all(part: list[tuple[str, str, Any]]) -> None:
        # the final joined table depends on the final rows of both tables only, not on how the two
        # topics interleave: each topic's records in order are enough
        for topic in ("customers", "orders"):
            produce(broker.bootstrap, topic, [(k, v) for t, k, v in part if t == topic])

    def joined(rows: dict[str, dict[str, Any]], errors: list[BaseException]) -> None:
        for t in ("inner", "left"):
            try:
                wait_for(lambda: final_rows(latest_per_key(broker.bootstrap, t, OUT).items()) == rows[t],
                         errors, f"the final rows of the {t} join", timeout=90)
            except AssertionError:
                got = final_rows(latest_per_key(broker.bootstrap, t, OUT).items())
                wrong = {k: (got.get(k), rows[t].get(k)) for k in set(got) | set(rows[t]) if got.get(k) != rows[t].get(k)}
                raise AssertionError(f"{t}: (worker, expected) of the keys that differ: {wrong}") from None

    def worker(state: str) -> sl.App:
        app = sl.App("fk-worker", brokers=broker.bootstrap, state_dir=str(tmp_path / state),
                     commit_interval_ms=100, config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        build(app)
        return app

    assert expected_half["inner"] and expected_half["left"]
    produce_all(recs[:half])
    with app_in_thread(worker("first")) as errors:
        joined(expected_half, errors)
    assert not errors
    topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    counts = {name: len(t.partitions) for name, t in topics.items()}
    for name in ("inner", "left"):  # created at start, co-partitioned with the table each is read with
        assert counts[f"fk-worker-{name}-subscription-registration-topic"] == CUSTOMERS
        assert counts[f"fk-worker-{name}-subscription-response-topic"] == ORDERS
        assert counts[f"fk-worker-{name}-subscription-store-changelog"] == CUSTOMERS
        assert counts[f"fk-worker-{name}-changelog"] == ORDERS
    produce_all(recs[half:])
    with app_in_thread(worker("second")) as errors:  # a new state dir: every store restored first
        joined(expected, errors)
    assert not errors
    assert expected["left"] != expected["inner"] and expected["inner"]  # both kinds have rows, and differ


SCRIPT = """
import os
import time

import streamlet as sl

SLOW_S = float(os.environ.get("TEST_SLOW_S", "0"))


def joiner(o, c):
    return {"n": o["n"], "tier": None if c is None else c["tier"]}


def fk(o):
    if SLOW_S:  # called for every change of a left row: the second half takes seconds, the kill is mid-run
        time.sleep(SLOW_S)
    return o["customer"]


app = sl.App("fk-kill")
orders, customers = app.table("orders"), app.table("customers")
orders.join(customers, joiner, foreign_key=fk, name="inner").to_stream().to("inner")
orders.left_join(customers, joiner, foreign_key=fk, name="left").to_stream().to("left")
"""


@pytest.mark.timeout(420)
def test_three_workers_with_one_killed_end_with_the_rows_of_an_uninterrupted_run(tmp_path: Path, broker,
                                                                                 report) -> None:
    """Subscriptions, answers, the subscription and result stores across a SIGKILL mid-run and the
    rebalances around it: replays may emit rows again, the joined tables end as the TestDriver's."""
    import signal
    import textwrap

    from tests.integration.kafka_io import committed
    from tests.integration.procs import Worker, wait_until

    broker.create_topic("orders", ORDERS)
    broker.create_topic("customers", CUSTOMERS)
    for t in ("inner", "left"):
        broker.create_topic(t, OUT)
    script = tmp_path / "fk_kill.py"
    script.write_text(textwrap.dedent(SCRIPT))
    recs = records(11, 500)
    half = len(recs) // 2
    reference = sl.App("fk-ref")
    build(reference)
    with sl.testing.TestDriver(reference) as d:
        for topic, key, value in recs:
            d.send(topic, key=key, value=value)
        expected = {t: final_rows(d.read(t)) for t in ("inner", "left")}

    def produce_all(part: list[tuple[str, str, Any]]) -> None:
        for topic in ("customers", "orders"):
            produce(broker.bootstrap, topic, [(k, v) for t, k, v in part if t == topic])

    with sl.testing.TestDriver(reference) as d:
        for topic, key, value in recs[:half]:
            d.send(topic, key=key, value=value)
        expected_half = {t: final_rows(d.read(t)) for t in ("inner", "left")}

    def offsets() -> str:
        topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
        return "end offsets: " + ", ".join(
            f"{t}: {sum(end_offsets(broker.bootstrap, t, len(m.partitions)).values())}"
            for t, m in sorted(topics.items()) if not t.startswith("__"))

    def wait_joined(rows: dict[str, dict[str, Any]]) -> None:
        for t in ("inner", "left"):
            wait_until(lambda: final_rows(latest_per_key(broker.bootstrap, t, OUT).items()) == rows[t], 180,
                       f"the final rows of the {t} join", workers=workers, interval=1, detail=offsets)

    slow = {"TEST_SLOW_S": "0.01"}
    workers = [Worker(tmp_path, script, broker.bootstrap, tmp_path / f"state-{n}", n, env=slow)
               for n in ("w1", "w2", "w3")]
    produce_all(recs[:half])
    wait_joined(expected_half)
    written = lambda: sum(end_offsets(broker.bootstrap, "left", OUT).values())  # noqa: E731
    seen = written()
    produce_all(recs[half:])
    # answers to a row that changed since are dropped: outputs come in bursts, a few per key
    wait_until(lambda: written() > seen, 120, "outputs of the second half", workers=workers, detail=offsets)
    workers[0].stop(signal.SIGKILL)  # mid-run: what it processed since its last commit comes again
    at_kill = sum(max(o, 0) for t, n in (("orders", ORDERS), ("customers", CUSTOMERS))
                  for o in committed(broker.bootstrap, "fk-kill", t, n).values())
    workers[0] = Worker(tmp_path, script, broker.bootstrap, tmp_path / "state-w1", "w1-again")
    wait_joined(expected)
    assert [w.stop() for w in workers] == [0, 0, 0]
    report(f"foreign-key joins: one of 3 workers SIGKILLed with {at_kill} of {len(recs)} inputs committed; "
           f"{len(expected['inner'])} inner and "
           f"{len(expected['left'])} left-join rows as in an uninterrupted run")
