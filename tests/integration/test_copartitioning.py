"""A join's external inputs are checked for keys on the partition murmur2 gives them.

The README's own re-keyed join, with its ``users`` table written by a default
confluent-kafka producer (CRC32), used to enrich about a quarter of the
orders and drop the rest without a word.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

import streamlet as sl
from streamlet.errors import DataLossError
from tests.integration.procs import app_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

USERS, ORDERS = 20, 100


def readme_join(tmp_path: Path, **settings) -> tuple[sl.App, str]:
    app = sl.App("cp-join", brokers="embedded", state_dir=str(tmp_path), commit_interval_ms=100, **settings)
    users = app.table("users")
    (app.stream("orders").select_key(lambda k, v: v["user"])
        .join(users, lambda order, user: {**order, "name": user["name"]}).to("enriched"))
    broker = app.embedded_broker()
    for topic in ("users", "orders", "enriched"):
        broker.create_topic(topic, 4)
    return app, broker.bootstrap_servers


def send(bootstrap: str, topic: str, records: list[tuple[str, dict]], **producer_settings) -> None:
    p = Producer({"bootstrap.servers": bootstrap, **producer_settings})
    for key, value in records:
        p.produce(topic, orjson.dumps(value), key.encode())
    assert p.flush(10) == 0


def run_join(app: sl.App, bootstrap: str, **users_producer) -> tuple[int, list[BaseException]]:
    """Users first (the table), then the orders; how many orders came out enriched."""
    from tests.integration.kafka_io import read_all

    send(bootstrap, "users", [(f"user-{i}", {"name": f"name {i}"}) for i in range(USERS)], **users_producer)
    with app_in_thread(app) as errors:
        deadline = time.monotonic() + 20
        while not (app._runner and app._runner.tasks and len(app.store("users")) == USERS):
            if errors or time.monotonic() > deadline:
                return 0, errors
            time.sleep(0.1)
        send(bootstrap, "orders", [(f"o{i}", {"user": f"user-{i % USERS}", "i": i}) for i in range(ORDERS)],
             partitioner="murmur2_random")
        time.sleep(2)
        return len(read_all(bootstrap, "enriched", 4)), list(errors)


def test_a_table_written_with_crc32_is_reported_loudly(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="streamlet")
    app, bootstrap = readme_join(tmp_path)
    enriched, errors = run_join(app, bootstrap)  # confluent-kafka's default partitioner: CRC32
    assert not errors
    assert enriched < ORDERS  # what the user would see: orders missing from the output
    mismatches = app.metrics()['partition_mismatches{topic="users"}']
    assert mismatches > 0
    reports = [r.getMessage() for r in caplog.records if "partitions differently" in r.getMessage()]
    assert len(reports) == 1, reports  # the first mismatch per topic, then counted
    assert "topic 'users'" in reports[0] and "murmur2_random" in reports[0]
    assert "where Kafka's default partitioner (murmur2" in reports[0]


def test_a_table_written_with_murmur2_joins_every_order(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="streamlet")
    app, bootstrap = readme_join(tmp_path)
    enriched, errors = run_join(app, bootstrap, partitioner="murmur2_random")
    assert not errors and enriched == ORDERS
    assert not any(k.startswith("partition_mismatches") for k in app.metrics())
    assert "partitions differently" not in caplog.text


def test_fail_stops_the_worker_at_the_first_mismatch(tmp_path: Path) -> None:
    app, bootstrap = readme_join(tmp_path, on_partition_mismatch="fail")
    enriched, errors = run_join(app, bootstrap)
    assert len(errors) == 1 and isinstance(errors[0], DataLossError), errors
    assert "topic 'users'" in str(errors[0]) and "on_partition_mismatch='fail'" in str(errors[0])


def test_streamlets_own_outputs_are_partitioned_with_murmur2(tmp_path: Path) -> None:
    """Sinks put every key where Kafka's Java clients (and a streamlet join) look for it, whatever
    partitioner wrote the input."""
    from streamlet.partitioner import murmur2_partition
    from tests.integration.kafka_io import read_all

    app = sl.App("cp-sink", brokers="embedded", state_dir=str(tmp_path), commit_interval_ms=100)
    app.stream("in").map_values(lambda v: {**v, "seen": True}).to("out")
    broker = app.embedded_broker()
    broker.create_topic("in", 4)
    broker.create_topic("out", 4)
    keys = [f"key-{i}" for i in range(200)]
    send(broker.bootstrap_servers, "in", [(k, {"k": k}) for k in keys])  # CRC32 on the way in
    with app_in_thread(app) as errors:
        deadline = time.monotonic() + 20
        while not errors and time.monotonic() < deadline:
            out = read_all(broker.bootstrap_servers, "out", 4)
            if len(out) == len(keys):
                break
            time.sleep(0.2)
        assert not errors
        assert sorted(m.key().decode() for m in out) == sorted(keys)
        assert all(m.partition() == murmur2_partition(m.key(), 4) for m in out)
