"""StandbyTasks in this process against a broker: what a standby writes into its store, what it
reads committed only, how it hands its store over and when it lets it go.

Another worker is played by records written to ``<app>-standby-offsets`` by the test: it says it
runs task 0_0, so the placement gives this worker that task's standby.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

import streamlet as sl
from streamlet.config import resolve
from streamlet.runtime.standby import StandbyTasks, standby_specs
from streamlet.runtime.standby_members import standby_topic
from streamlet.state import StateDirectory
from tests.integration.kafka_io import end_offsets
from tests.integration.procs import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

APP = "standby-unit"
CHANGELOG = f"{APP}-counts-changelog"


def topology() -> sl.App:
    app = sl.App(APP, brokers="embedded")
    app.stream("events").group_by_key().count(name="counts")
    return app


def claim(bootstrap: str, worker: str, active: list[str] | None) -> None:
    """Publish ``worker`` as running ``active`` (None: a tombstone, the worker left)."""
    p = Producer({"bootstrap.servers": bootstrap})
    value = None if active is None else orjson.dumps({"active": active, "offsets": {},
                                                      "ts": int(time.time() * 1000)})
    p.produce(standby_topic(APP), key=worker.encode(), value=value)
    assert p.flush(10) == 0


def write_changelog(bootstrap: str, kind: str) -> None:
    """Committed k0..k99 = b"1"; then, under transactions, k0..k9 = b"aborted" aborted and
    k0..k4 = b"2" committed (on the mock, which keeps no transactions apart, plain records; on Tansu,
    which shows aborted records to read_committed readers — docs/exactly-once.md — no aborted one)."""
    if kind == "mock":
        p = Producer({"bootstrap.servers": bootstrap})
        for i in range(100):
            p.produce(CHANGELOG, key=f"k{i}".encode(), value=b"1")
        for i in range(5):
            p.produce(CHANGELOG, key=f"k{i}".encode(), value=b"2")
        assert p.flush(10) == 0
        return
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "standby-unit-writer"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(100):
        p.produce(CHANGELOG, key=f"k{i}".encode(), value=b"1")
    p.commit_transaction(30)
    if kind == "kafka":
        p.begin_transaction()
        for i in range(10):
            p.produce(CHANGELOG, key=f"k{i}".encode(), value=b"aborted")
        p.flush(10)
        p.abort_transaction(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(CHANGELOG, key=f"k{i}".encode(), value=b"2")
    p.commit_transaction(30)


def test_a_standby_follows_committed_changelog_records_and_hands_its_store_over(tmp_path: Path, broker) -> None:
    for topic, n in (("events", 1), (CHANGELOG, 1), (standby_topic(APP), 1)):
        broker.create_topic(topic, n)
    write_changelog(broker.bootstrap, broker.kind)
    changelog_end = end_offsets(broker.bootstrap, CHANGELOG, 1)[0]
    claim(broker.bootstrap, "other-worker", ["0_0"])
    app = topology()
    guarantee = "at_least_once" if broker.kind == "mock" else "exactly_once"
    config = resolve(APP, brokers=broker.bootstrap, state_dir=str(tmp_path / "state"), guarantee=guarantee,
                     num_standby_replicas=1)
    assert list(standby_specs(app.topology, {"events": 1})) == ["0_0"]
    standbys = StandbyTasks(config, broker.bootstrap, app.topology, {"events": 1, CHANGELOG: 1},
                            worker_id="this-worker")
    try:
        wait_until(lambda: "0_0" in standbys.standbys and
                   standbys.standbys["0_0"].position[CHANGELOG] == changelog_end, 60,
                   f"the standby of 0_0 to reach the changelog's end {changelog_end}",
                   detail=lambda: str({t: s.position for t, s in standbys.standbys.items()}))
        standbys.release(["0_0"])  # the group assigns 0_0 here: the store is closed for its restore
        assert "0_0" not in standbys.standbys
        time.sleep(2.5)  # two placement rounds: a task running here gets no standby here
        assert "0_0" not in standbys.standbys
    finally:
        standbys.close()
    # the standby only read: the changelog did not grow
    assert end_offsets(broker.bootstrap, CHANGELOG, 1)[0] == changelog_end
    store = StateDirectory(tmp_path / "state", APP).open_store(0, "counts")
    try:
        assert store.offsets() == {CHANGELOG: changelog_end}  # the restore reads only what comes after
        rows = dict(store.items())
    finally:
        store.close()
    expected = {f"k{i}".encode(): b"2" if i < 5 else b"1" for i in range(100)}
    assert rows == expected  # aborted records never landed (read_committed)


def test_a_standby_placed_elsewhere_is_closed_and_its_state_kept(tmp_path: Path, broker) -> None:
    for topic, n in (("events", 1), (CHANGELOG, 1), (standby_topic(APP), 1)):
        broker.create_topic(topic, n)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(50):
        p.produce(CHANGELOG, key=f"k{i}".encode(), value=b"v")
    assert p.flush(10) == 0
    claim(broker.bootstrap, "other-worker", ["0_0"])
    config = resolve(APP, brokers=broker.bootstrap, state_dir=str(tmp_path / "state"), num_standby_replicas=1)
    standbys = StandbyTasks(config, broker.bootstrap, topology().topology, {"events": 1, CHANGELOG: 1},
                            worker_id="this-worker")
    try:
        wait_until(lambda: "0_0" in standbys.standbys and standbys.standbys["0_0"].position[CHANGELOG] == 50,
                   60, "the standby of 0_0 to reach offset 50")
        claim(broker.bootstrap, "other-worker", None)  # the other worker left: nobody to stand by for
        wait_until(lambda: "0_0" not in standbys.standbys, 30, "the standby to be closed")
    finally:
        standbys.close()
    store = StateDirectory(tmp_path / "state", APP).open_store(0, "counts")
    try:
        assert store.offsets() == {CHANGELOG: 50} and len(dict(store.items())) == 50
    finally:
        store.close()


def test_a_failed_standby_write_leaves_no_gap(tmp_path: Path, broker, monkeypatch) -> None:
    """A batch whose write fails is not skipped: the standby is reopened at its checkpoint and reads it again."""
    from streamlet.state.rocksdb import RocksDBStore

    for topic, n in (("events", 1), (CHANGELOG, 1), (standby_topic(APP), 1)):
        broker.create_topic(topic, n)
    claim(broker.bootstrap, "other-worker", ["0_0"])
    config = resolve(APP, brokers=broker.bootstrap, state_dir=str(tmp_path / "state"), num_standby_replicas=1)
    standbys = StandbyTasks(config, broker.bootstrap, topology().topology, {"events": 1, CHANGELOG: 1},
                            worker_id="this-worker")
    failures: list[int] = []
    write = RocksDBStore.write

    def failing_once(self, changes, offsets=None, ranges=()):  # type: ignore[no-untyped-def]
        if changes and not failures:
            failures.append(len(changes))
            raise OSError("disk hiccup")
        return write(self, changes, offsets, ranges)

    try:
        wait_until(lambda: "0_0" in standbys.standbys, 60, "the standby of 0_0 to open")
        monkeypatch.setattr(RocksDBStore, "write", failing_once)
        p = Producer({"bootstrap.servers": broker.bootstrap})
        for i in range(200):
            p.produce(CHANGELOG, key=f"k{i}".encode(), value=str(i).encode())
        assert p.flush(10) == 0
        wait_until(lambda: failures and "0_0" in standbys.standbys
                   and standbys.standbys["0_0"].position[CHANGELOG] == 200, 60,
                   "the standby to fail a write, reopen and reach offset 200")
    finally:
        standbys.close()
    store = StateDirectory(tmp_path / "state", APP).open_store(0, "counts")
    try:
        assert store.offsets() == {CHANGELOG: 200}
        assert dict(store.items()) == {f"k{i}".encode(): str(i).encode() for i in range(200)}
    finally:
        store.close()
