"""Standby replicas across worker processes: a standby follows the other worker's changelogs, and
when that worker is SIGKILLed the survivor restores only the changelog's tail, with the same counts.

Two `streamlet run` workers count 120,000 events over 60,000 keys (4 partitions; STANDBY_TEST_KEYS
sets the keys). With
``num_standby_replicas=1`` the test waits until the first worker's standbys of the second's tasks
logged their changelog's end offset, SIGKILLs the second, and checks from the survivor's restore
lines that it read (almost) nothing; with 0 standbys the same failover restores the whole changelog
of those partitions. Either way the final counts are a single run's. The seconds from the SIGKILL
until events produced after it are all counted are reported (``report``), not asserted.
"""

from __future__ import annotations

import os
import re
import signal
import textwrap
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.integration.kafka_io import end_offsets, latest_per_key, produce, read_committed, wait_committed
from tests.integration.procs import BROKERS, Worker, wait_until

#: keys of state (each counted twice); STANDBY_TEST_KEYS=1000000 measures a larger failover
KEYS = int(os.environ.get("STANDBY_TEST_KEYS", "60000"))
pytestmark = [pytest.mark.integration, pytest.mark.timeout(420 + KEYS // 1000)]

PARTITIONS = 4
APP = "standby-app"
CHANGELOG = f"{APP}-counts-changelog"
SCRIPT = f"""
import streamlet as sl

app = sl.App("{APP}")
app.stream("events").group_by_key().count(name="counts").to_stream().to("counts")
"""
READY = re.compile(r"store counts partition (\d+) ready: (\d+) changelog records restored")
CAUGHT_UP = re.compile(r"standby task \d+_(\d+): " + re.escape(CHANGELOG) + r" \[\d+\] caught up at offset (\d+)")
PARTITION = re.compile(r"\[(\d+)\]")


@pytest.fixture
def broker(tmp_path: Path, broker_kind: str):
    b = BROKERS[broker_kind](tmp_path, {"events": PARTITIONS, "counts": PARTITIONS})
    yield b
    b.stop()


def ready_lines(worker: Worker) -> list[tuple[int, int]]:
    """(partition, records restored) of each restore the worker logged, in order."""
    return [(int(p), int(n)) for p, n in READY.findall(worker.text())]


def caught_up(worker: Worker) -> dict[int, int]:
    """Partition → the last changelog offset the worker's standby logged as caught up at."""
    return {int(p): int(o) for p, o in CAUGHT_UP.findall(worker.text())}


def seconds_until_counted(bootstrap: str, keys: set[str], start: dict[int, int], since: float,
                          deadline_s: float, workers: list[Worker]) -> float:
    """Read ``counts`` from ``start`` until every key of ``keys`` was output; seconds from ``since``."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "standby-reader", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.assign([TopicPartition("counts", p, o) for p, o in start.items()])
    seen: set[str] = set()
    try:
        def all_seen() -> bool:
            for m in c.consume(1000, 0.2):
                if m.error() is None and m.key() is not None:
                    seen.add(m.key().decode())
            return keys <= seen

        wait_until(all_seen, deadline_s, "the events produced after the SIGKILL to be counted", workers=workers,
                   detail=lambda: f"{len(keys - seen)} of {len(keys)} not output yet", interval=0.0)
        return time.monotonic() - since
    finally:
        c.close()


@pytest.mark.parametrize("standbys,guarantee", [(1, "at_least_once"), (0, "at_least_once"), (1, "exactly_once")],
                         ids=["1-standby", "0-standbys", "1-standby-eos"])
def test_failover_to_a_standby_restores_only_the_tail(tmp_path: Path, broker, report, standbys: int,
                                                      guarantee: str) -> None:
    if guarantee == "exactly_once" and broker.kind == "mock":
        pytest.skip("the embedded broker refuses exactly-once at start (tests/integration/test_exactly_once.py)")
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {"STREAMLET_NUM_STANDBY_REPLICAS": str(standbys), "STREAMLET_GUARANTEE": guarantee}
    a = Worker(tmp_path, script, broker.bootstrap, tmp_path / "state-a", "a", env)
    b = Worker(tmp_path, script, broker.bootstrap, tmp_path / "state-b", "b", env)
    workers = [a, b]
    wait_until(lambda: a.owned() and b.owned() and len(a.owned() | b.owned()) == PARTITIONS, 90,
               "both workers to own partitions", workers=workers)
    events = [(f"k{i % KEYS}", {"i": i}) for i in range(2 * KEYS)]
    produce(broker.bootstrap, "events", events)
    wait_committed(broker.bootstrap, APP, "events", PARTITIONS, 180 + KEYS // 2000, workers)
    ends = end_offsets(broker.bootstrap, CHANGELOG, PARTITIONS)
    victims = sorted({int(PARTITION.search(p).group(1)) for p in b.owned() if p.startswith("events")})  # type: ignore[union-attr]
    assert victims and sum(ends[p] for p in victims) >= 20_000  # enough state for the restore to show
    if standbys:
        wait_until(lambda: all(caught_up(a).get(p) == ends[p] for p in victims), 120 + KEYS // 5000,
                   f"a's standbys of partitions {victims} to reach the changelog ends {ends}", workers=workers,
                   detail=lambda: f"caught up: {caught_up(a)}")
    else:
        assert not caught_up(a) and "standby task" not in a.text()
    before = len(ready_lines(a))
    out_start = end_offsets(broker.bootstrap, "counts", PARTITIONS)

    b.stop(signal.SIGKILL)
    killed = time.monotonic()
    after = [(f"after-{i}", {"i": i}) for i in range(200)]  # on every partition
    produce(broker.bootstrap, "events", after)
    seconds = seconds_until_counted(broker.bootstrap, {k for k, _ in after}, out_start, killed, 120 + KEYS // 5000,
                                    [a])
    restored = Counter()
    for p, n in ready_lines(a)[before:]:
        restored[p] += n
    assert set(victims) <= set(restored), f"a did not restore {victims}: {restored}"
    tail = sum(restored[p] for p in victims)
    full = sum(ends[p] for p in victims)
    report(f"{broker.kind}, {guarantee}, {standbys} standby: SIGKILL -> processing {seconds:.1f} s (session.timeout.ms=6000); "
           f"changelog records restored {tail} of {full}")
    if standbys:
        assert tail <= full // 100, f"restored {tail} of {full} changelog records: more than the tail"
    else:
        assert tail >= full // 2, f"without a standby the whole changelog is restored, not {tail} of {full}"

    wait_committed(broker.bootstrap, APP, "events", PARTITIONS, 120, [a])
    assert a.stop() == 0
    expected = Counter(k for k, _ in events + after)
    if guarantee == "exactly_once":  # commit markers take the last offsets: read committed records
        got = {m.key().decode(): orjson.loads(m.value()) for m in read_committed(broker.bootstrap, "counts",
                                                                                  PARTITIONS)}
    else:
        got = latest_per_key(broker.bootstrap, "counts", PARTITIONS)
    assert got == dict(expected)


OPENED = re.compile(r"standby task \d+_(\d+) (opened|closed)")


def standbys_open(worker: Worker) -> set[int]:
    """Partitions whose standby task is open on the worker now, replayed from its log."""
    out: set[int] = set()
    for p, event in OPENED.findall(worker.text()):
        (out.add if event == "opened" else out.discard)(int(p))
    return out


def test_three_workers_keep_one_standby_per_task_never_beside_its_active(tmp_path: Path, broker) -> None:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {"STREAMLET_NUM_STANDBY_REPLICAS": "1"}
    workers = [Worker(tmp_path, script, broker.bootstrap, tmp_path / f"state-{i}", f"w{i}", env) for i in range(3)]
    produce(broker.bootstrap, "events", [(f"k{i}", {"i": i}) for i in range(2_000)])
    layout: dict[str, object] = {}

    def settled() -> bool:
        owners = {p: [w.name for w in workers if f"events[{p}]" in w.owned()] for p in range(PARTITIONS)}
        holders = {p: [w.name for w in workers if p in standbys_open(w)] for p in range(PARTITIONS)}
        layout.update(owners=owners, holders=holders)
        return all(len(owners[p]) == 1 and len(holders[p]) == 1 and holders[p] != owners[p]
                   for p in range(PARTITIONS)) and all(w.owned() for w in workers)

    wait_until(settled, 120, "one standby per task, on another worker than its active", workers=workers,
               detail=lambda: str(layout))
    wait_committed(broker.bootstrap, APP, "events", PARTITIONS, 120, workers)
    assert [w.stop() for w in workers] == [0, 0, 0]
