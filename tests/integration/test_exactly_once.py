"""Exactly-once in worker processes: three workers in one group, SIGKILLed at random moments while
records arrive, and restarted. A read_committed reader of the outputs must see every result of an
uninterrupted run (the TestDriver on the same records) exactly once: each joined order once, each
aggregate's successive values once each, every final aggregate equal. The same run under
at-least-once shows (and reports) the duplicates exactly-once removes.

The topology has a stream–table join, a by-offset aggregation and a count behind a repartition
topic. Only real Kafka enforces transactions fully; the embedded broker and Tansu are run too and
what they show is reported (docs/exactly-once.md says what each proves)."""

from __future__ import annotations

import random
import signal
import textwrap
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

import streamlet as sl
from streamlet.errors import ConfigError
from tests.integration.kafka_io import produce, read_committed, wait_committed
from tests.integration.procs import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PARTITIONS = 4
USERS = 60
REGIONS = ("north", "south", "east", "west", "centre")

#: the topology, on an ``app`` the worker script (or the reference) makes
TOPOLOGY = """
users = app.table("users")
enriched = app.stream("orders").join(users, lambda o, u: {"i": o["i"], "region": u["region"]})
enriched.to("enriched")
(enriched.group_by_key()
    .aggregate(n=sl.agg.count(), first=sl.agg.earliest_by_offset("i"), last=sl.agg.latest_by_offset("i"),
               name="user-stats")
    .to_stream().to("user-stats"))
enriched.group_by(lambda k, v: v["region"]).count(name="region-counts").to_stream().to("region-counts")
"""
SCRIPT = 'import streamlet as sl\n\napp = sl.App("eos-proof")\n' + TOPOLOGY
OUTPUTS = ("enriched", "user-stats", "region-counts")


def build() -> sl.App:
    app = sl.App("eos-reference")
    exec(TOPOLOGY, {"sl": sl, "app": app})  # the workers' topology, as their script builds it
    return app


def users() -> list[tuple[str, dict[str, Any]]]:
    return [(f"u{n}", {"region": REGIONS[n % len(REGIONS)]}) for n in range(USERS)]


def orders(count: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    rnd = random.Random(seed)
    return [(f"u{rnd.randrange(USERS)}", {"i": i}) for i in range(count)]


def expected_outputs(recs: list[tuple[str, dict[str, Any]]]) -> dict[str, list[tuple[Any, Any]]]:
    with sl.testing.TestDriver(build(), partitions=PARTITIONS) as d:
        for key, value in users():
            d.send("users", key=key, value=value)
        for key, value in recs:
            d.send("orders", key=key, value=value)
        return {topic: d.read(topic) for topic in OUTPUTS}


def run_with_kills(tmp_path: Path, broker: Any, guarantee: str, recs: list[tuple[str, Any]], kills: int,
                   seed: int) -> tuple[dict[str, list[tuple[Any, Any]]], int]:
    """Produce ``recs`` over a few seconds while SIGKILLing a random worker ``kills`` times (each
    started again at once); the outputs once every input is committed, and the kills made."""
    for topic in ("users", "orders", *OUTPUTS):
        broker.create_topic(topic, PARTITIONS)
    produce(broker.bootstrap, "users", users())
    script = tmp_path / "eos_proof.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {"STREAMLET_GUARANTEE": guarantee}
    workers = [Worker(tmp_path, script, broker.bootstrap, tmp_path / f"state-{n}", n, env=env)
               for n in range(3)]
    # the table first: an order processed before its user's row would find no row to join
    wait_committed(broker.bootstrap, "eos-proof", "users", PARTITIONS, 120, workers)
    chunks = [recs[i:i + 2000] for i in range(0, len(recs), 2000)]

    def feed() -> None:
        for chunk in chunks:
            produce(broker.bootstrap, "orders", chunk)
            time.sleep(0.3)

    feeder = threading.Thread(target=feed)
    feeder.start()
    rnd, made = random.Random(seed), 0
    try:
        while made < kills:
            time.sleep(rnd.uniform(1.5, 4.0))  # a random moment, records in flight
            victim = rnd.randrange(len(workers))
            workers[victim].stop(signal.SIGKILL)
            made += 1
            workers[victim] = Worker(tmp_path, script, broker.bootstrap, tmp_path / f"state-{victim}",
                                     f"{victim}-after-kill-{made}", env=env)
    finally:
        feeder.join()
    # every worker joined before the end is awaited: a stop in the middle of a start-up is no clean stop
    wait_until(lambda: all("assigned" in w.text() for w in workers), 60, "the restarted workers to join",
               workers=workers)
    wait_committed(broker.bootstrap, "eos-proof", "orders", PARTITIONS, 240, workers)
    # and what the orders' tasks wrote to the repartition topic is counted too (its end offsets count
    # commit markers, so the group's offsets are no measure): every order counted once, or time out
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sum(final(
            [(m.key(), orjson.loads(m.value())) for m in read_committed(broker.bootstrap, "region-counts",
                                                                        PARTITIONS)]).values()) < len(recs):
        time.sleep(1)
    assert [w.stop() for w in workers] == [0, 0, 0]
    got = {topic: [(m.key().decode(), orjson.loads(m.value()))
                   for m in read_committed(broker.bootstrap, topic, PARTITIONS)] for topic in OUTPUTS}
    return got, made


def duplicates(got: list[tuple[Any, Any]]) -> int:
    seen = Counter((k, orjson.dumps(v, option=orjson.OPT_SORT_KEYS)) for k, v in got)
    return sum(n - 1 for n in seen.values())


def final(records: list[tuple[Any, Any]]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for k, v in records:
        out[k] = v
    return out


def successive_values_once(got: list[tuple[Any, Any]], expected: list[tuple[Any, Any]]) -> list[Any]:
    """Keys whose outputs are not exactly the uninterrupted run's, in its order (per key)."""
    mine, theirs = defaultdict(list), defaultdict(list)
    for k, v in got:
        mine[k].append(v)
    for k, v in expected:
        theirs[k].append(v)
    return [k for k in theirs if mine.get(k) != theirs[k]] + [k for k in mine if k not in theirs]


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_workers_killed_at_random_moments_give_each_result_exactly_once(
        tmp_path: Path, broker, broker_kind: str, guarantee: str, report) -> None:
    if broker_kind == "mock" and guarantee == "exactly_once":
        pytest.skip("the embedded broker refuses exactly-once at start (test_the_embedded_broker_refuses_...)")
    count, kills = (100_000, 5) if broker_kind == "kafka" else (20_000, 2)
    recs = orders(count, seed=7)
    expected = expected_outputs(recs)
    got, made = run_with_kills(tmp_path, broker, guarantee, recs, kills, seed=11)

    # every final aggregate equals the uninterrupted run's, whatever the guarantee
    for topic in ("user-stats", "region-counts"):
        assert final(got[topic]) == final(expected[topic]), topic
    assert {v["i"] for _, v in got["enriched"]} == set(range(count))  # nothing lost
    dups = {topic: duplicates(got[topic]) for topic in OUTPUTS}
    enforced = guarantee == "exactly_once" and broker_kind == "kafka"
    if enforced:
        assert dups == {topic: 0 for topic in OUTPUTS}, dups
        for topic in OUTPUTS:
            assert not successive_values_once(got[topic], expected[topic])[:5], topic
    report(f"{guarantee} on {broker_kind}: {count} orders, 3 workers, {made} SIGKILLs at random moments; "
           f"records seen twice or more by a read_committed reader: {dups}; final aggregates as in an "
           "uninterrupted run")


def test_the_embedded_broker_refuses_exactly_once_at_start(tmp_path: Path) -> None:
    """librdkafka's mock cluster takes transactions but drops the offsets sent with them: a worker
    there would process everything again after a restart, so exactly-once is refused, saying why."""
    app = sl.App("eos-embedded", brokers="embedded", state_dir=str(tmp_path), guarantee="exactly_once")
    app.stream("in").to("out")
    try:
        with pytest.raises(ConfigError, match="cannot work on the embedded broker.*at_least_once"):
            app.run()
    finally:
        app.close()


@pytest.mark.kafka_only
def test_streamlets_assignor_gives_each_result_exactly_once_under_kills(tmp_path: Path, broker, broker_kind: str,
                                                                        report, monkeypatch) -> None:
    """The same proof with task_assignor="streamlet" (membership through aiokafka, the transactional
    offset commits with the group metadata built from its generation)."""
    if broker_kind != "kafka":
        pytest.skip("only Kafka enforces transactions and generations together")
    monkeypatch.setenv("STREAMLET_TASK_ASSIGNOR", "streamlet")  # the workers inherit the environment
    count, kills = 100_000, 5
    recs = orders(count, seed=7)
    expected = expected_outputs(recs)
    got, made = run_with_kills(tmp_path, broker, "exactly_once", recs, kills, seed=13)
    for topic in ("user-stats", "region-counts"):
        assert final(got[topic]) == final(expected[topic]), topic
    assert {v["i"] for _, v in got["enriched"]} == set(range(count))
    dups = {topic: duplicates(got[topic]) for topic in OUTPUTS}
    assert dups == {topic: 0 for topic in OUTPUTS}, dups
    for topic in OUTPUTS:
        assert not successive_values_once(got[topic], expected[topic])[:5], topic
    report(f"task_assignor=streamlet, exactly_once on kafka: {count} orders, {made} SIGKILLs: no duplicate, "
           "final aggregates as in an uninterrupted run")
