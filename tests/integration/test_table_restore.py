"""A source table regrouped into an aggregation, on real worker processes killed mid-run.

The table restores from its own input topic (no second changelog) up to the
committed offset, then processes — and forwards — what follows exactly as the
first time; the regrouped counts must equal those computed from the input.
"""

from __future__ import annotations

import random
import signal
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.kafka_io import latest_per_key, produce, wait_committed
from tests.integration.procs import BROKERS, Worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PARTITIONS = 4
SCRIPT = """
import streamlet as sl

app = sl.App("{app_id}")
users = app.table("users", name="users")
users.group_by(lambda k, v: v["city"]).count(name="per-city").to_stream().to("city-counts")
app.stream("orders").join(users, lambda o, u: {{**o, "city": u["city"]}}).to("enriched")
"""


def updates(count: int, users: int, cities: int, seed: int) -> list[tuple[str, dict]]:
    rnd = random.Random(seed)
    return [(f"u{rnd.randrange(users)}", {"city": f"c{rnd.randrange(cities)}", "i": i}) for i in range(count)]


def per_city(records: list[tuple[str, dict]]) -> dict[str, int]:
    latest = {k: v["city"] for k, v in records}
    out: dict[str, int] = {}
    for city in latest.values():
        out[city] = out.get(city, 0) + 1
    return out


@pytest.fixture
def broker(tmp_path: Path, broker_kind: str):
    """The embedded mock, Tansu or Kafka (``--broker``), with the topics of the script."""
    b = BROKERS[broker_kind](tmp_path, {"users": PARTITIONS, "orders": PARTITIONS, "city-counts": PARTITIONS,
                                        "enriched": PARTITIONS})
    yield b
    b.stop()


def test_regrouped_table_counts_survive_kills_and_restarts(tmp_path: Path, broker) -> None:
    app_id = "table-app"
    script = tmp_path / "tables.py"
    script.write_text(textwrap.dedent(SCRIPT.format(app_id=app_id)))
    rows = updates(40_000, 2_000, 25, seed=3)
    workers = [Worker(tmp_path, script, broker.bootstrap, tmp_path / f"s{i}", f"w{i}") for i in range(2)]
    try:
        time.sleep(2)
        chunk = len(rows) // 5
        for i in range(5):
            produce(broker.bootstrap, "users", rows[i * chunk:(i + 1) * chunk if i < 4 else None])
            time.sleep(0.4)
            if i in (1, 3):  # SIGKILL mid-run, restart on the same disk: the table restores its tail
                workers[i % 2].stop(signal.SIGKILL)
                workers[i % 2] = Worker(tmp_path, script, broker.bootstrap, tmp_path / f"s{i % 2}",
                                        f"w{i % 2}-restart{i}")
        wait_committed(broker.bootstrap, app_id, "users", PARTITIONS, 150, workers)
        wait_committed(broker.bootstrap, app_id, f"{app_id}-per-city-repartition", PARTITIONS, 90, workers)
        # the table is the users' latest rows: an order sees its user's latest city
        latest = {k: v for k, v in rows}
        orders = [(user, {"order": n}) for n, user in enumerate(sorted(latest)[:200])]
        produce(broker.bootstrap, "orders", orders)
        wait_committed(broker.bootstrap, app_id, "orders", PARTITIONS, 60, workers)
        # a join's stream and table partitions are owned together (the range assignor)
        for w in workers:
            owned = w.owned()
            assert {p.replace("orders", "users") for p in owned if p.startswith("orders")} == \
                {p for p in owned if p.startswith("users")}, owned
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0]
    assert latest_per_key(broker.bootstrap, "city-counts", PARTITIONS) == per_city(rows)
    enriched = latest_per_key(broker.bootstrap, "enriched", PARTITIONS)
    assert enriched == {user: {**value, "city": latest[user]["city"]} for user, value in orders}
