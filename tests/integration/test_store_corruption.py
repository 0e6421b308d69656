"""A corrupt RocksDB store is a store fault, never a record fault (Kafka Streams' task-corrupted path).

A flipped byte inside a data block used to crash-loop the worker with an
error that blamed an input record, and ``on_error='skip'`` then left keys
wrong for good. Now the task closes, the store is wiped and restored from
its changelog, and the records since the last commit are processed again.
"""

from __future__ import annotations

import os
import random
import textwrap
from pathlib import Path

import pytest

from tests.integration.kafka_io import latest_per_key, produce, wait_committed
from tests.integration.procs import BROKERS, Worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PARTITIONS = 2
SCRIPT = """
import streamlet as sl

app = sl.App("{app_id}")
(app.stream("events").group_by_key()
    .aggregate(n=sl.agg.count(), last=sl.agg.latest_by_offset("v"), pad=sl.agg.latest_by_offset("pad"),
               name="summary")
    .to_stream().to("summaries"))
"""


@pytest.fixture
def broker(tmp_path: Path, broker_kind: str):
    b = BROKERS[broker_kind](tmp_path, {"events": PARTITIONS, "summaries": PARTITIONS})
    yield b
    b.stop()


def events(start: int, keys: int, seed: int) -> list[tuple[str, dict]]:
    """One event per key (each key read back from the store on its next event), shuffled."""
    rnd = random.Random(seed)
    out = [(f"user-{k:05d}", {"v": start + k, "pad": "x" * 40}) for k in range(keys)]
    rnd.shuffle(out)
    return out


def corrupt_data_blocks(store_dir: Path) -> list[Path]:
    """Flip one byte a third of the way into every large SST file (a data block, not the footer)."""
    hit = []
    for sst in sorted(store_dir.glob("*.sst")):
        size = sst.stat().st_size
        if size < 20_000:
            continue
        with open(sst, "r+b") as f:
            f.seek(size // 3)
            byte = f.read(1)
            f.seek(size // 3)
            f.write(bytes([byte[0] ^ 0xFF]))
        hit.append(sst)
    return hit


def test_corrupt_block_is_restored_from_the_changelog_not_blamed_on_a_record(tmp_path: Path, broker) -> None:
    app_id = "corrupt-app"
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT.format(app_id=app_id)))
    state = tmp_path / "state"
    keys = 3_000
    first, second = events(0, keys, seed=1), events(keys, keys, seed=2)
    produce(broker.bootstrap, "events", first)

    # skip would hide a corrupt block as "bad records" and leave wrong aggregates for good
    env = {"STREAMLET_ON_ERROR": "skip"}
    w = Worker(tmp_path, script, broker.bootstrap, state, "w1", env=env)
    wait_committed(broker.bootstrap, app_id, "events", PARTITIONS, 90, [w])
    assert w.stop() == 0  # close flushes the memtables into SST files

    hit = [f for p in range(PARTITIONS) for f in corrupt_data_blocks(state / app_id / str(p) / "summary")]
    assert hit, "no SST file large enough to corrupt"

    produce(broker.bootstrap, "events", second)
    w = Worker(tmp_path, script, broker.bootstrap, state, "w2", env=env)
    wait_committed(broker.bootstrap, app_id, "events", PARTITIONS, 120, [w])
    assert w.stop() == 0  # closing never fails on the (wiped) store
    log = w.text()
    assert "is corrupted" in log and "restored from their changelogs" in log, w.tail()
    assert "skipped record" not in log  # never through on_error
    assert "Traceback" not in log, w.tail()

    rows = latest_per_key(broker.bootstrap, "summaries", PARTITIONS)
    wrong = {k: r for k, r in rows.items() if r["n"] != 2 or r["last"] != dict(second)[k]["v"]}
    assert len(rows) == keys and not wrong, f"{len(wrong)} wrong rows, e.g. {list(wrong.items())[:3]}"
    # the wiped store was restored and now holds every key again, uncorrupted
    for p in range(PARTITIONS):
        assert not any(os.path.getsize(f) == 0 for f in (state / app_id / str(p) / "summary").glob("*.sst"))


def test_corruption_at_a_commits_store_write_resets_only_that_task(tmp_path: Path, monkeypatch, caplog) -> None:
    """RocksDB refuses a commit's write (a corrupted database): the changes are in the changelog
    already, so the store is wiped and restored from it, and the counts stay exact."""
    import time

    import orjson
    from confluent_kafka import Producer

    import streamlet as sl
    from streamlet.errors import StoreCorruptedError
    from streamlet.state.rocksdb import RocksDBStore
    from tests.integration.kafka_io import read_all
    from tests.integration.procs import app_in_thread

    real_write = RocksDBStore.write
    failures = []

    def write(self, changes, offsets=None):
        # the second commit of partition 0's store (not a restore: those write no changes of their own
        # before the first batch, and this one carries records)
        if self.name == "counts" and self.path.endswith("/0/counts") and changes and not failures \
                and offsets and next(iter(offsets.values())) > 50:
            failures.append(offsets)
            self.corrupted = True
            raise StoreCorruptedError(self.name, self.path, "write", "Corruption: injected for the test")
        return real_write(self, changes, offsets)

    monkeypatch.setattr(RocksDBStore, "write", write)
    caplog.set_level("INFO", logger="streamlet")
    app = sl.App("wc-app", brokers="embedded", state_dir=str(tmp_path), commit_interval_ms=100)
    app.stream("events").group_by_key().count(name="counts").to_stream().to("counted")
    broker = app.embedded_broker()
    broker.create_topic("events", 2)
    broker.create_topic("counted", 2)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "partitioner": "murmur2_random"})

    def send(n: int) -> None:
        for i in range(n):
            producer.produce("events", orjson.dumps({"i": i}), f"k{i % 100}".encode())
        assert producer.flush(10) == 0

    with app_in_thread(app) as errors:
        for _ in range(6):
            send(100)
            time.sleep(0.3)
        deadline = time.monotonic() + 30
        while True:
            view = app.store("counts") if app._runner and app._runner.tasks else None
            if view is not None and len(view) == 100 and all(view[f"k{i}"] == 6 for i in range(100)):
                break
            assert time.monotonic() < deadline and not errors, errors
            time.sleep(0.1)
        assert failures, "the injected write failure never happened"
        # every key's last count emitted is 6 (re-processed records emit again: at-least-once)
        last = {}
        for m in read_all(broker.bootstrap_servers, "counted", 2):
            last[m.key().decode()] = orjson.loads(m.value())
        assert last == {f"k{i}": 6 for i in range(100)}
    assert not errors
    restores = [r.getMessage() for r in caplog.records if "ready:" in r.getMessage()]
    # partition 0 was restored again, whole, from its changelog; partition 1 only at the start
    assert any("counts partition 0" in m and "from offset start" in m and "0 changelog" not in m
               for m in restores), restores
    assert sum("counts partition 1" in m for m in restores) == 1, restores
