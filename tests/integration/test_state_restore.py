"""Stateful workers: changelog restore, kills, replays, repartition — on the embedded broker, Tansu and Kafka.

Each test runs a broker (`streamlet broker`, or Tansu through the Admin API)
and `streamlet run` workers as real processes, and compares the final tables
with the answer computed from the input.
"""

from __future__ import annotations

import random
import shutil
import signal
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.kafka_io import end_offsets, latest_per_key, produce, wait_committed
from tests.integration.procs import BROKERS, Worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

PARTITIONS = 4
SCRIPT = """
import streamlet as sl

app = sl.App("{app_id}")
events = app.stream("events")
{grouping}.aggregate(
    first=sl.agg.earliest_by_offset("v"),
    last=sl.agg.latest_by_offset("v"),
    n=sl.agg.count(),
    name="summary",
).to_stream().to("summaries")
"""


def write_script(tmp: Path, app_id: str, repartition: bool = False) -> Path:
    grouping = ('events.group_by(lambda k, v: v["user"])' if repartition else "events.group_by_key()")
    path = tmp / f"{app_id}.py"
    path.write_text(textwrap.dedent(SCRIPT.format(app_id=app_id, grouping=grouping)))
    return path


def make_events(start: int, count: int, keys: int, seed: int) -> list[tuple[str, dict]]:
    rnd = random.Random(seed)
    out = []
    for i in range(start, start + count):
        user = f"user-{rnd.randrange(keys)}"
        out.append((user, {"user": user, "v": i}))
    return out


def expected(events: list[tuple[str, dict]]) -> dict[str, dict]:
    """What a single worker must answer: events of one key are in produce order."""
    rows: dict[str, dict] = {}
    for key, value in events:
        row = rows.get(key)
        if row is None:
            rows[key] = {"first": value["v"], "last": value["v"], "n": 1}
        else:
            row["last"] = value["v"]
            row["n"] += 1
    return rows


@pytest.fixture
def broker(tmp_path: Path, broker_kind: str):
    """The embedded mock, Tansu or Kafka (``--broker``), with the input and output topics."""
    b = BROKERS[broker_kind](tmp_path, {"events": PARTITIONS, "summaries": PARTITIONS})
    yield b
    b.stop()


def test_restart_restores_only_the_tail_and_empty_disk_restores_everything(tmp_path: Path, broker) -> None:
    app_id = "restore-app"
    script = write_script(tmp_path, app_id)
    dir_a, dir_b = tmp_path / "state-a", tmp_path / "state-b"
    batch1 = make_events(0, 4_000, 300, seed=1)
    produce(broker.bootstrap, "events", batch1)

    # 1. worker on disk A processes batch 1 and stops cleanly (checkpoint at close)
    w = Worker(tmp_path, script, broker.bootstrap, dir_a, "w1")
    wait_committed(broker.bootstrap, app_id, "events", PARTITIONS, 90, [w])
    assert w.stop() == 0
    assert sum(w.restored().values()) == 0  # empty changelog, nothing to restore

    # 2. a worker on an empty disk B restores everything, then processes batch 2
    w = Worker(tmp_path, script, broker.bootstrap, dir_b, "w2")
    time.sleep(1)
    batch2 = make_events(4_000, 2_000, 300, seed=2)
    produce(broker.bootstrap, "events", batch2)
    wait_committed(broker.bootstrap, app_id, "events", PARTITIONS, 90, [w])
    assert w.stop() == 0
    full_restore = w.restored()
    assert sum(full_restore.values()) > 0
    assert {p for (_, p) in full_restore} == set(range(PARTITIONS))

    # 3. back on disk A: only the tail written by worker 2 is restored
    w = Worker(tmp_path, script, broker.bootstrap, dir_a, "w3")
    batch3 = make_events(6_000, 500, 300, seed=3)
    produce(broker.bootstrap, "events", batch3)
    wait_committed(broker.bootstrap, app_id, "events", PARTITIONS, 90, [w])
    assert w.stop() == 0
    tail = w.restored()
    assert 0 < sum(tail.values()) < sum(full_restore.values()) + sum(full_restore.values())
    # the tail is what worker 2 added: no more than one record per changed key per commit
    assert sum(tail.values()) <= len(batch2) + 2 * 300

    # 4. empty disk again: restores everything, same answers
    shutil.rmtree(dir_a)
    w = Worker(tmp_path, script, broker.bootstrap, dir_a, "w4")
    restored = w.wait_restored(PARTITIONS)
    assert w.stop() == 0
    changelog_end = end_offsets(broker.bootstrap, f"{app_id}-summary-changelog", PARTITIONS)
    assert {p: n for (_, p), n in restored.items()} == changelog_end  # every changelog record

    answer = expected(batch1 + batch2 + batch3)
    assert latest_per_key(broker.bootstrap, "summaries", PARTITIONS) == answer


@pytest.mark.parametrize("repartition", [False, True], ids=["group_by_key", "group_by-repartition"])
def test_killed_and_restarted_workers_give_single_worker_answers(tmp_path: Path, broker, repartition: bool) -> None:
    app_id = "kill-app-rp" if repartition else "kill-app"
    script = write_script(tmp_path, app_id, repartition)
    events = make_events(0, 200_000, 5_000, seed=7)
    workers = [Worker(tmp_path, script, broker.bootstrap, tmp_path / f"s{i}", f"w{i}") for i in range(3)]
    try:
        time.sleep(2)
        rnd = random.Random(11)
        chunk = len(events) // 6
        for i in range(6):
            produce(broker.bootstrap, "events", events[i * chunk:(i + 1) * chunk if i < 5 else None])
            time.sleep(0.5)
            if i in (1, 3, 4):  # kill a worker mid-run and start a new one on the same disk
                victim = rnd.randrange(3)
                workers[victim].stop(signal.SIGKILL)
                workers[victim] = Worker(tmp_path, script, broker.bootstrap, tmp_path / f"s{victim}",
                                         f"w{victim}-restart{i}")
        wait_committed(broker.bootstrap, app_id, "events", PARTITIONS, 240, workers)
        if repartition:
            wait_committed(broker.bootstrap, app_id, f"{app_id}-summary-repartition", PARTITIONS, 120, workers)
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0, 0]
    assert latest_per_key(broker.bootstrap, "summaries", PARTITIONS) == expected(events)
    # spare databases (and adopted spares' links) of killed workers were swept by their successors
    assert not [d for i in range(3) if (d := tmp_path / f"s{i}" / app_id / ".spare").exists()]
