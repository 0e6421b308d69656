"""``task_assignor="streamlet"`` across worker processes (Kafka Streams' KIP-441): a new worker warms
copies of tasks up before it runs them, a task moves only to a worker caught up on it, and a dead
worker's tasks go to the workers holding their standbys.

Workers count events per key (``counts``, 4 partitions). What a user checks: which worker runs which
partition (the ``assigned`` / ``revoked`` log lines), how many changelog records each restore read
(``store counts partition N ready: M changelog records restored``) and the final counts.
"""

from __future__ import annotations

import re
import signal
import textwrap
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.integration.kafka_io import end_offsets, latest_per_key, produce, read_committed, wait_committed
from tests.integration.procs import BROKERS, Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

PARTITIONS = 4
KEYS = 40_000
APP = "assignor-app"
CHANGELOG = f"{APP}-counts-changelog"
SCRIPT = f"""
import streamlet as sl

app = sl.App("{APP}")
app.stream("events").group_by_key().count(name="counts").to_stream().to("counts")
"""
READY = re.compile(r"store counts partition (\d+) ready: (\d+) changelog records restored")
CAUGHT_UP = re.compile(r"standby task \d+_(\d+): " + re.escape(CHANGELOG) + r" \[\d+\] caught up at offset (\d+)")
ENV = {"STREAMLET_TASK_ASSIGNOR": "streamlet", "STREAMLET_PROBING_REBALANCE_INTERVAL_MS": "3000"}


@pytest.fixture
def broker(tmp_path: Path, broker_kind: str):
    b = BROKERS[broker_kind](tmp_path, {"events": PARTITIONS, "counts": PARTITIONS})
    yield b
    b.stop()


def partitions_of(worker: Worker) -> set[int]:
    return {int(p.split("[")[1].rstrip("]")) for p in worker.owned() if p.startswith("events")}


def restores(worker: Worker) -> list[tuple[int, int]]:
    return [(int(p), int(n)) for p, n in READY.findall(worker.text())]


def caught_up(worker: Worker) -> dict[int, int]:
    return {int(p): int(o) for p, o in CAUGHT_UP.findall(worker.text())}


def test_a_new_worker_warms_up_before_it_takes_tasks_over(tmp_path: Path, broker, report) -> None:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    a = Worker(tmp_path, script, broker.bootstrap, tmp_path / "state-a", "a", ENV)
    wait_until(lambda: len(partitions_of(a)) == PARTITIONS, 90, "a to run every task", workers=[a])
    events = [(f"k{i % KEYS}", {"i": i}) for i in range(2 * KEYS)]
    produce(broker.bootstrap, "events", events)
    wait_committed(broker.bootstrap, APP, "events", PARTITIONS, 180, [a])
    ends = end_offsets(broker.bootstrap, CHANGELOG, PARTITIONS)

    b = Worker(tmp_path, script, broker.bootstrap, tmp_path / "state-b", "b", ENV)
    workers = [a, b]
    started = time.monotonic()
    wait_until(lambda: len(partitions_of(b)) == 2 and len(partitions_of(a)) == 2, 120,
               "the tasks to be balanced over a and b", workers=workers,
               detail=lambda: f"a runs {partitions_of(a)}, b runs {partitions_of(b)}; b caught up {caught_up(b)}")
    moved = partitions_of(b)
    report(f"{broker.kind}: b took {sorted(moved)} over {time.monotonic() - started:.1f} s after it started")
    # b restored only the tail of each task it took: its warm-up had followed the changelog first
    restored = Counter()
    for p, n in restores(b):
        restored[p] += n
    full = sum(ends[p] for p in moved)
    assert sum(restored[p] for p in moved) <= full // 100, f"b restored {dict(restored)} of {ends}: not warm"
    assert set(moved) <= set(caught_up(b)), f"b ran {moved} before its warm-ups caught up: {caught_up(b)}"
    # and a kept running its other tasks throughout: never revoked what it kept
    kept = set(range(PARTITIONS)) - moved
    revoked = re.findall(r"INFO \S+: revoked (.*)$", a.text(), re.M)
    assert not any(f"events[{p}]" in line for line in revoked for p in kept), revoked

    more = [(f"k{i % KEYS}", {"i": i}) for i in range(2_000)]
    produce(broker.bootstrap, "events", more)
    wait_committed(broker.bootstrap, APP, "events", PARTITIONS, 120, workers)
    assert [w.stop() for w in workers] == [0, 0]
    assert latest_per_key(broker.bootstrap, "counts", PARTITIONS) == dict(Counter(k for k, _ in events + more))


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_dead_workers_tasks_go_to_their_standbys(tmp_path: Path, broker, report, guarantee: str) -> None:
    if guarantee == "exactly_once" and broker.kind == "mock":
        pytest.skip("the embedded broker refuses exactly-once at start (tests/integration/test_exactly_once.py)")
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**ENV, "STREAMLET_NUM_STANDBY_REPLICAS": "1", "STREAMLET_GUARANTEE": guarantee}
    workers = [Worker(tmp_path, script, broker.bootstrap, tmp_path / f"state-{n}", n, env) for n in "abc"]
    wait_until(lambda: all(partitions_of(w) for w in workers)
               and sum(len(partitions_of(w)) for w in workers) == PARTITIONS, 120, "every worker to run tasks",
               workers=workers)
    events = [(f"k{i % KEYS}", {"i": i}) for i in range(2 * KEYS)]
    produce(broker.bootstrap, "events", events)
    wait_committed(broker.bootstrap, APP, "events", PARTITIONS, 180, workers)
    ends = end_offsets(broker.bootstrap, CHANGELOG, PARTITIONS)
    victim = max(workers, key=lambda w: len(partitions_of(w)))
    lost = partitions_of(victim)
    survivors = [w for w in workers if w is not victim]
    wait_until(lambda: all(any(caught_up(w).get(p) == ends[p] for w in survivors) for p in lost), 120,
               f"standbys of {sorted(lost)} to catch up", workers=workers,
               detail=lambda: str({w.name: caught_up(w) for w in survivors}))
    before = {w.name: len(restores(w)) for w in survivors}
    victim.stop(signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: set().union(*(partitions_of(w) for w in survivors)) == set(range(PARTITIONS)), 120,
               "the survivors to run every task", workers=survivors)
    report(f"{broker.kind}, {guarantee}: {sorted(lost)} running again {time.monotonic() - killed:.1f} s after the SIGKILL")
    taken = sum(n for w in survivors for p, n in restores(w)[before[w.name]:] if p in lost)
    full = sum(ends[p] for p in lost)
    assert taken <= full // 100, f"the survivors restored {taken} of {full} changelog records of {sorted(lost)}"

    wait_committed(broker.bootstrap, APP, "events", PARTITIONS, 120, survivors)
    assert [w.stop() for w in survivors] == [0, 0]
    expected = dict(Counter(k for k, _ in events))
    if guarantee == "exactly_once":  # every count once, in committed transactions only
        outputs = read_committed(broker.bootstrap, "counts", PARTITIONS)
        got = {m.key().decode(): orjson.loads(m.value()) for m in outputs}
        assert got == expected
        # nothing counted twice: per key, the committed outputs are 1, 2, ... with no repeat
        seen = Counter(m.key().decode() for m in outputs)
        assert seen == Counter(expected), "a count was output twice: the dead worker's work was committed twice"
    else:
        assert latest_per_key(broker.bootstrap, "counts", PARTITIONS) == expected


@pytest.mark.kafka_only
def test_a_worker_dropped_from_the_group_commits_nothing_under_exactly_once(tmp_path: Path, broker, report) -> None:
    """SIGSTOP one of two workers past the session timeout while records flow: the other takes its
    tasks; SIGCONT: the stopped one's open transaction must not commit (its generation is stale), so
    every count is output exactly once (only Kafka checks the generation on transactional commits)."""
    if broker.kind != "kafka":
        pytest.skip("only Kafka checks the group generation of transactional offset commits")
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**ENV, "STREAMLET_NUM_STANDBY_REPLICAS": "1", "STREAMLET_GUARANTEE": "exactly_once",
           "STREAMLET_COMMIT_INTERVAL_MS": "1000"}
    a = Worker(tmp_path, script, broker.bootstrap, tmp_path / "state-a", "a", env)
    z = Worker(tmp_path, script, broker.bootstrap, tmp_path / "state-z", "z", env)
    workers = [a, z]
    wait_until(lambda: partitions_of(a) and partitions_of(z), 120, "both workers to run tasks", workers=workers)
    first = [(f"k{i % 2_000}", {"i": i}) for i in range(20_000)]
    produce(broker.bootstrap, "events", first)
    wait_committed(broker.bootstrap, APP, "events", PARTITIONS, 120, workers)
    # z is frozen with records fetched and an open transaction, then dropped by the group
    produce(broker.bootstrap, "events", [(f"k{i % 2_000}", {"i": i}) for i in range(20_000, 24_000)])
    time.sleep(0.3)
    z.proc.send_signal(signal.SIGSTOP)
    wait_until(lambda: len(partitions_of(a)) == PARTITIONS, 60, "a to take z's tasks", workers=[a])
    produce(broker.bootstrap, "events", [(f"k{i % 2_000}", {"i": i}) for i in range(24_000, 30_000)])
    z.proc.send_signal(signal.SIGCONT)
    time.sleep(5)  # z wakes up, tries to commit what it had, learns it was dropped
    wait_committed(broker.bootstrap, APP, "events", PARTITIONS, 120, workers)
    wait_until(lambda: sum(len(partitions_of(w)) for w in workers) == PARTITIONS, 60,
               "the tasks to be spread again", workers=workers)
    report(f"kafka: z after the freeze: {'dropped from group' in z.text()} (log), runs {sorted(partitions_of(z))}")
    assert [w.stop() for w in workers] == [0, 0]
    outputs = read_committed(broker.bootstrap, "counts", PARTITIONS)
    per_key = Counter(m.key().decode() for m in outputs)
    expected = Counter(f"k{i % 2_000}" for i in range(30_000))
    assert per_key == expected, "some count was output twice (or missed) after the frozen worker woke up"
    final = {m.key().decode(): orjson.loads(m.value()) for m in outputs}
    assert final == dict(expected)
