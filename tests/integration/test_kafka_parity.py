"""What only real Kafka proves: KIP-848 groups of workers, internal topics as Kafka Streams makes
them (and the repartition purge), and a restore from a changelog the log cleaner really compacted.

Runs with ``--broker=kafka`` or ``--broker=all`` (deselected otherwise: it needs Java).
"""

from __future__ import annotations

import random
import shutil
import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

import streamlet as sl
from streamlet.broker.admin import KafkaTopicAdmin
from tests.integration.kafka_io import end_offsets, latest_per_key, produce, wait_committed
from tests.integration.kafka_procs import KafkaTestBroker
from tests.integration.procs import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only, pytest.mark.timeout(300)]

PARTITIONS = 4
SCRIPT = """
import streamlet as sl

app = sl.App("{app_id}")
(app.stream("events").group_by(lambda k, v: v["user"])
    .aggregate(first=sl.agg.earliest_by_offset("v"), last=sl.agg.latest_by_offset("v"), n=sl.agg.count(),
               name="summary")
    .to_stream().to("summaries"))
"""


@pytest.fixture
def kafka(tmp_path: Path) -> KafkaTestBroker:
    return KafkaTestBroker(tmp_path, {"events": PARTITIONS, "summaries": PARTITIONS})


def events(start: int, count: int, users: int, seed: int) -> list[tuple[str, dict]]:
    rnd = random.Random(seed)
    return [(f"e{i}", {"user": f"user-{rnd.randrange(users)}", "v": i}) for i in range(start, start + count)]


def expected(records: list[tuple[str, dict]]) -> dict[str, dict]:
    """One uninterrupted worker: a user's events meet in one repartition partition, in input order
    per input partition — so compare only what holds whatever the interleaving: counts, and the
    first / last of users whose events all came from one input partition."""
    rows: dict[str, dict] = {}
    for _, v in records:
        row = rows.setdefault(v["user"], {"first": v["v"], "last": v["v"], "n": 0})
        row["last"], row["n"] = v["v"], row["n"] + 1
    return rows


def test_three_kip848_workers_with_kills_give_single_worker_answers(tmp_path: Path, kafka) -> None:
    """group.protocol=consumer (the broker assigns): 3 workers through a repartition topic, two
    SIGKILLs and restarts on their disks; every count exact, every partition owned once at the end."""
    app_id = "kip848-app"
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT.format(app_id=app_id)))
    env = {"STREAMLET_CONFIG": "group.protocol=consumer"}
    records = events(0, 60_000, 500, seed=3)
    workers = [Worker(tmp_path, script, kafka.bootstrap, tmp_path / f"s{i}", f"w{i}", env=env) for i in range(3)]
    try:
        for i in range(4):
            produce(kafka.bootstrap, "events", records[i * 15_000:(i + 1) * 15_000])
            time.sleep(1)
            if i in (1, 2):
                victim = i
                workers[victim].stop(signal.SIGKILL)
                workers[victim] = Worker(tmp_path, script, kafka.bootstrap, tmp_path / f"s{victim}",
                                         f"w{victim}-restart{i}", env=env)
        wait_committed(kafka.bootstrap, app_id, "events", PARTITIONS, 180, workers)
        wait_committed(kafka.bootstrap, app_id, f"{app_id}-summary-repartition", PARTITIONS, 120, workers)
        time.sleep(1)
        owned = [w.owned() for w in workers]
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0, 0]
    repartition = {f"{app_id}-summary-repartition[{p}]" for p in range(PARTITIONS)}
    owners = [o & repartition for o in owned]
    assert set().union(*owners) == repartition and sum(len(o) for o in owners) == PARTITIONS, owned
    rows = latest_per_key(kafka.bootstrap, "summaries", PARTITIONS)
    want = expected(records)
    assert {u: r["n"] for u, r in rows.items()} == {u: r["n"] for u, r in want.items()}
    assert all(rows[u]["first"] <= rows[u]["last"] for u in rows)
    assert "group.protocol" not in "".join(w.tail() for w in workers if "Traceback" in w.text())


def test_internal_topics_have_kafka_streams_settings_and_repartition_records_are_purged(tmp_path: Path,
                                                                                       kafka) -> None:
    app_id = "purge-app"
    app = sl.App(app_id, brokers=kafka.bootstrap, state_dir=str(tmp_path / "state"), commit_interval_ms=100,
                 repartition_purge_interval_ms=200)
    app.stream("events").group_by(lambda k, v: v["user"]).count(name="per-user")
    repartition, changelog = f"{app_id}-per-user-repartition", f"{app_id}-per-user-changelog"
    produce(kafka.bootstrap, "events", events(0, 5_000, 50, seed=1))
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run(app, errors))
    thread.start()
    try:
        wait_committed(kafka.bootstrap, app_id, "events", PARTITIONS, 60)
        wait_committed(kafka.bootstrap, app_id, repartition, PARTITIONS, 60)
        ends = end_offsets(kafka.bootstrap, repartition, PARTITIONS)
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})

        def purged() -> bool:
            from confluent_kafka.admin import OffsetSpec

            firsts = admin.list_offsets({TopicPartition(repartition, p): OffsetSpec.earliest()
                                         for p in range(PARTITIONS)})
            return all(f.result().offset == ends[tp.partition] for tp, f in firsts.items())

        wait_until(purged, 30, "the repartition topic to be purged up to the committed offsets")
    finally:
        app.stop()
        thread.join(30)
    assert not errors, errors
    topics = KafkaTopicAdmin(kafka.bootstrap, {})
    rp, cl = topics.topic_config(repartition), topics.topic_config(changelog)
    assert (rp["cleanup.policy"], rp["retention.ms"], rp["segment.bytes"]) == ("delete", "-1", "52428800")
    assert rp["message.timestamp.type"] == cl["message.timestamp.type"] == "CreateTime"
    assert cl["cleanup.policy"] == "compact"
    assert topics.partitions()[repartition] == topics.partitions()[changelog] == PARTITIONS


def _run(app: sl.App, errors: list[BaseException]) -> None:
    try:
        app.run()
    except BaseException as exc:
        errors.append(exc)


def test_a_changelog_the_cleaner_compacted_restores_the_same_state(tmp_path: Path, kafka) -> None:
    """50 keys counted over 20,000 events, committed often: the changelog has thousands of records
    per partition; once the log cleaner has compacted it (a few per key), a new worker restores
    from it to exactly the counts the uncompacted changelog gave."""
    app_id = "compact-app"
    changelog = f"{app_id}-counts-changelog"

    def counting_app(state: Path) -> sl.App:
        app = sl.App(app_id, brokers=kafka.bootstrap, state_dir=str(state), commit_interval_ms=50)
        app.stream("events").group_by_key().count(name="counts")
        return app

    def run_until(app: sl.App, condition: Any, feed: Any = None) -> dict[str, int]:
        errors: list[BaseException] = []
        thread = threading.Thread(target=lambda: _run(app, errors))
        thread.start()
        try:
            if feed is not None:
                feed()
            wait_until(lambda: errors or condition(app), 90, "the app", detail=lambda: str(errors))
            return {k: v for k, v in app.store("counts").items()}
        finally:
            app.stop()
            thread.join(30)
            assert not errors, errors

    keyed = [(f"k{i % 50}", {"i": i}) for i in range(20_000)]

    def feed() -> None:  # while the app runs: many commits, many changelog records per key
        for chunk in range(10):
            produce(kafka.bootstrap, "events", keyed[chunk * 2_000:(chunk + 1) * 2_000])
            time.sleep(0.5)

    first = run_until(counting_app(tmp_path / "a"), lambda app: _counted(app, 20_000), feed)
    assert sum(first.values()) == 20_000
    uncompacted = sum(end_offsets(kafka.bootstrap, changelog, PARTITIONS).values())
    assert uncompacted >= 250, uncompacted  # several records per key

    # compaction: the cleaner needs closed segments; a segment rolls at the next write after segment.ms
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, changelog, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in (("segment.ms", "100"), ("min.cleanable.dirty.ratio", "0.01"),
                            ("delete.retention.ms", "100"))])
    admin.incremental_alter_configs([resource])[resource].result(10)
    time.sleep(0.5)
    produce(kafka.bootstrap, "events", [(f"k{i}", {"i": -1}) for i in range(50)])  # one more record per key
    second = run_until(counting_app(tmp_path / "a"), lambda app: _counted(app, 20_050))

    def compacted() -> bool:  # fewer records than before, although 50 more were written since
        return count_records(kafka.bootstrap, changelog, PARTITIONS) < uncompacted // 2

    wait_until(compacted, 60, "the log cleaner to compact the changelog", interval=1)
    shutil.rmtree(tmp_path / "b", ignore_errors=True)
    restored = run_until(counting_app(tmp_path / "b"), lambda app: _counted(app, 20_050))
    assert restored == second == {f"k{i}": 401 for i in range(50)}


def count_records(bootstrap: str, topic: str, partitions: int) -> int:
    """Records left in ``topic`` (a compacted log has fewer than its end offsets say)."""
    from confluent_kafka import Consumer

    ends = end_offsets(bootstrap, topic, partitions)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "counter", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    count, deadline = 0, time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            count += sum(1 for m in c.consume(1000, 0.2) if m.error() is None)
            if all(tp.offset >= ends[tp.partition] for tp in c.position(
                    [TopicPartition(topic, p) for p in range(partitions)])):
                return count
    finally:
        c.close()
    raise AssertionError(f"could not read {topic} to its end")


def _counted(app: sl.App, total: int) -> bool:
    runner = app._runner
    if runner is None or runner.tasks is None or len(runner.tasks.active_tasks()) < PARTITIONS:
        return False
    return sum(v for _, v in app.store("counts").items()) == total
