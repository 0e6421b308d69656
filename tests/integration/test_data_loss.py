"""Records a broker deleted before streamlet used them are reported, never skipped in silence.

The embedded broker (librdkafka's mock) keeps about 5 MiB per partition and
drops older records without telling anyone; real Kafka does the same through
retention (here: DeleteRecords, on a changelog given ``cleanup.policy=
compact,delete`` first, as retention on it would need). Each reproduction
from the issue: the broker says so itself; an input partition whose committed
offset fell below the log start is reported (warn + metric by default, fatal
by a setting); a restore whose changelog lost records it needs fails (by
default) naming store, partition and offsets. Tansu deletes nothing
(no DeleteRecords, retention not applied): these tests run on the mock and
Kafka.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

import streamlet as sl
from streamlet.broker.mock import MockCluster
from streamlet.errors import ChangelogTruncatedError, DataLossError
from tests.integration.kafka_io import committed, wait_committed
from tests.integration.kafka_io import end_offsets
from tests.integration.procs import BROKERS, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PAD = "x" * 1000


def produce(bootstrap: str, topic: str, records: list[tuple[str, Any]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"})
    for key, value in records:
        while True:
            try:
                p.produce(topic, orjson.dumps(value), key.encode())
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(30) == 0


def flood(bootstrap: str, topic: str, count: int = 8_000) -> None:
    """~8 MB of 1 KB records: the mock drops the oldest of the partition."""
    produce(bootstrap, topic, [(f"f{i}", {"pad": PAD}) for i in range(count)])


def truncate(broker: Any, topic: str, compacted: bool = False) -> None:
    """Make ``topic`` [0] lose its oldest records: the mock past its cap, Kafka by DeleteRecords
    (which a compacted topic refuses until its cleanup policy also deletes)."""
    if broker.kind == "mock":
        flood(broker.bootstrap, topic)
        return
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    if compacted:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry("cleanup.policy", "compact,delete", incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([resource])[resource].result(10)
    else:
        produce(broker.bootstrap, topic, [(f"f{i}", {"pad": "x"}) for i in range(2_000)])
    end = end_offsets(broker.bootstrap, topic, 1)[0]
    for future in admin.delete_records([TopicPartition(topic, 0, end // 2)], request_timeout=10).values():
        future.result(10)


class Run:
    """``app.run()`` on a thread, stopped (not closed) by :meth:`stop`; what it raised in ``errors``."""

    def __init__(self, app: sl.App) -> None:
        self.app, self.errors = app, []
        self.thread = threading.Thread(target=self._target)
        self.thread.start()

    def _target(self) -> None:
        try:
            self.app.run()
        except BaseException as exc:
            self.errors.append(exc)

    def stop(self) -> None:
        self.app.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_the_embedded_broker_says_when_it_drops_records(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="streamlet.broker")
    cluster = MockCluster(1)
    try:
        cluster.create_topic("big", 1)
        flood(cluster.bootstrap_servers, "big", 10_000)
        wait_until(lambda: cluster.dropped.get("big"), 10, "the watch to see the drop")
        dropped = cluster.dropped["big"]
    finally:
        cluster.close()
    assert 4_000 < dropped < 6_000  # ~5 MiB of 10 MB kept
    message = "\n".join(r.getMessage() for r in caplog.records)
    assert f"DROPPED records of topic 'big' partition 0: offsets 0 to {dropped - 1} are gone" in message
    assert "5 MiB" in message


@pytest.fixture
def broker(tmp_path: Path, broker_kind: str):
    """The mock (`streamlet broker`, whose cap truncates) or Kafka (DeleteRecords); not Tansu."""
    if broker_kind == "tansu":
        pytest.skip("Tansu deletes no records (no DeleteRecords, retention not applied)")
    b = BROKERS[broker_kind](tmp_path, {"events": 1})
    yield b
    b.stop()


def counting_app(bootstrap: str, tmp_path: Path, app_id: str, **settings: Any) -> sl.App:
    app = sl.App(app_id, brokers=bootstrap, state_dir=str(tmp_path / "state"), commit_interval_ms=100,
                 **settings)
    app.stream("events").group_by_key().count(name="counts")
    return app


@pytest.mark.parametrize("policy", ["warn", "fail"])
def test_input_records_deleted_before_they_were_processed_are_reported(tmp_path: Path, broker, policy: str,
                                                                       caplog) -> None:
    caplog.set_level(logging.WARNING, logger="streamlet")
    app_id = f"trunc-in-{policy}"
    produce(broker.bootstrap, "events", [("a", {"i": i}) for i in range(10)])
    app = counting_app(broker.bootstrap, tmp_path, app_id, on_input_truncated=policy)
    run = Run(app)
    wait_committed(broker.bootstrap, app_id, "events", 1, 60)
    run.stop()
    assert not run.errors, run.errors
    assert committed(broker.bootstrap, app_id, "events", 1) == {0: 10}

    # while the app is down, the broker deletes records it has not processed yet
    truncate(broker, "events")
    app = counting_app(broker.bootstrap, tmp_path, app_id, on_input_truncated=policy)
    run = Run(app)
    if policy == "fail":
        run.thread.join(60)
        assert len(run.errors) == 1 and isinstance(run.errors[0], DataLossError), run.errors
        message = str(run.errors[0])
        assert "input topic 'events' partition 0: records 10 to" in message and "committed offset is 10" in message
        assert "on_input_truncated='warn'" in message
        assert committed(broker.bootstrap, app_id, "events", 1) == {0: 10}  # nothing past it
        return
    wait_committed(broker.bootstrap, app_id, "events", 1, 60)
    run.stop()
    assert not run.errors, run.errors
    lost = app.metrics()['input_truncated_records{partition="0",topic="events"}']
    assert lost > 900
    assert f"records 10 to {10 + lost - 1} were deleted before this application processed them" in caplog.text


def summary_app(bootstrap: str, tmp_path: Path, app_id: str, **settings: Any) -> sl.App:
    """A 1 KB row per key: 8,000 keys make an ~8 MB changelog partition (past the mock's cap)."""
    app = sl.App(app_id, brokers=bootstrap, state_dir=str(tmp_path / "state"), commit_interval_ms=200,
                 **settings)
    (app.stream("events").map_values(lambda v: {**v, "pad": PAD}).group_by_key()
        .aggregate(last=sl.agg.latest_by_offset("i"), pad=sl.agg.latest_by_offset("pad"), name="rows"))
    return app


def test_a_changelog_truncated_by_the_broker_fails_the_restore_unless_accepted(tmp_path: Path, broker,
                                                                                caplog) -> None:
    app_id = "trunc-cl"
    keys = 8_000
    produce(broker.bootstrap, "events", [(f"k{i}", {"i": i}) for i in range(keys)])  # ~100 KB of input
    app = summary_app(broker.bootstrap, tmp_path, app_id)
    run = Run(app)
    wait_committed(broker.bootstrap, app_id, "events", 1, 90)
    run.stop()
    assert not run.errors, run.errors
    changelog = f"{app_id}-rows-changelog"
    if broker.kind == "mock":
        wait_until(lambda: broker_dropped(broker, changelog), 10, "the broker to report the dropped changelog")
    else:
        truncate(broker, changelog, compacted=True)

    # a new worker (an empty disk) needs the whole changelog, whose start is gone
    import shutil

    shutil.rmtree(tmp_path / "state")
    app = summary_app(broker.bootstrap, tmp_path, app_id)
    run = Run(app)
    run.thread.join(60)
    assert len(run.errors) == 1 and isinstance(run.errors[0], ChangelogTruncatedError), run.errors
    message = str(run.errors[0])
    assert f"changelog '{changelog}' partition 0 starts at offset" in message
    assert "store 'rows' needs it from offset 0 (a new store)" in message
    assert "on_changelog_truncated='warn'" in message

    # accepted: the store is restored from what is left, with a warning and a metric
    caplog.set_level(logging.WARNING, logger="streamlet.state")
    app = summary_app(broker.bootstrap, tmp_path, app_id, on_changelog_truncated="warn")
    run = Run(app)
    wait_until(lambda: app._runner is not None and app._runner.state is not None
               and app._runner.state.restored_records > 0, 60, "the restore", detail=lambda: str(run.errors))
    time.sleep(0.5)
    run.stop()
    assert not run.errors, run.errors
    lost = app.metrics()[f'changelog_truncated_records{{partition="0",store="rows",topic="{changelog}"}}']
    assert lost > 1_000
    assert f"records 0 to {lost - 1} were deleted" in caplog.text


def broker_dropped(broker: Any, topic: str) -> bool:
    return f"DROPPED records of topic '{topic}'" in broker.log_path.read_text(errors="replace")
