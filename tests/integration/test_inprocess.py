"""`app.run()` in this process on its own embedded broker: RocksDB stores, interactive queries,
start-up checks of changelog and co-partitioning."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

import streamlet as sl
from streamlet.errors import ConfigError
from tests.integration.procs import app_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def produce(bootstrap: str, topic: str, records: list[tuple[str, dict | None]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for k, v in records:
        p.produce(topic, None if v is None else orjson.dumps(v), k.encode())
    assert p.flush(10) == 0


def test_interactive_queries_over_rocksdb_stores(tmp_path: Path) -> None:
    app = sl.App("iq-app", brokers="embedded", state_dir=str(tmp_path), commit_interval_ms=100)
    users = app.table("users")
    orders = app.stream("orders")
    orders.group_by_key().aggregate(n=sl.agg.count(), total=sl.agg.sum("amount"), name="totals")
    orders.join(users, lambda o, u: {**o, "name": u["name"]}).to("enriched")
    broker = app.embedded_broker()
    for t in ("users", "orders", "enriched"):
        broker.create_topic(t, 4)
    produce(broker.bootstrap_servers, "users", [(f"u{i}", {"name": f"user {i}"}) for i in range(20)])
    with app_in_thread(app) as errors:
        deadline = time.monotonic() + 30
        while not (app._runner and app._runner.tasks and len(app.store("users")) == 20):
            assert time.monotonic() < deadline and not errors, errors
            time.sleep(0.1)
        produce(broker.bootstrap_servers, "orders", [(f"u{i % 20}", {"amount": i}) for i in range(200)])
        while True:
            view = app.store("totals")
            if sum(row["n"] for _, row in view.items()) == 200:
                break
            assert time.monotonic() < deadline and not errors, errors
            time.sleep(0.1)
        assert view["u3"] == {"n": 10, "total": sum(i for i in range(200) if i % 20 == 3)}
        assert app.store("users")["u3"] == {"name": "user 3"}
        with pytest.raises(KeyError):
            app.store("no-such-store")
    assert not errors
    # the stores live under <state_dir>/<application id>/<partition>/<store>
    # (spare databases were opened at this first start; the unused ones are gone, and so are the
    # links adopted ones left for RocksDB while open)
    assert {p.name for p in (tmp_path / "iq-app").iterdir()} == {"0", "1", "2", "3"}
    assert (tmp_path / "iq-app" / "0" / "totals").is_dir()
    assert not (tmp_path / "iq-app" / "0" / "totals").is_symlink()


def test_changelog_with_wrong_partition_count_fails_at_start(tmp_path: Path) -> None:
    app = sl.App("cl-app", brokers="embedded", state_dir=str(tmp_path))
    app.stream("events").group_by_key().count(name="counts")
    broker = app.embedded_broker()
    broker.create_topic("events", 4)
    broker.create_topic("cl-app-counts-changelog", 2)
    with pytest.raises(ConfigError, match="cl-app-counts-changelog.*2 partitions.*needs 4"):
        app.run()
    app.close()
    assert not (tmp_path / "cl-app" / ".spare").exists()  # spares opened at start, closed on failure


def test_join_of_differently_partitioned_topics_fails_at_start(tmp_path: Path) -> None:
    app = sl.App("cp-app", brokers="embedded", state_dir=str(tmp_path))
    app.stream("orders").join(app.table("users"), lambda o, u: o).to("out")
    broker = app.embedded_broker()
    broker.create_topic("orders", 4)
    broker.create_topic("users", 2)
    with pytest.raises(ConfigError, match="different partition counts.*repartition"):
        app.run()
    app.close()
