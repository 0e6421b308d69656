"""Quickstart: orders in, big orders enriched and routed out, counts per customer — all on the
embedded broker, no set-up.

    python examples/quickstart.py

It loads sample orders (with a progress bar), runs the topology until every
order is processed, prints what came out, and exits 0.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import streamlet as sl

ORDERS = 5_000
PARTITIONS = 4
console = Console()

# -- the topology ---------------------------------------------------------------
app = sl.App("quickstart", brokers="embedded", state_dir=tempfile.mkdtemp(prefix="streamlet-quickstart-"),
             commit_interval_ms=200)
orders = app.stream("orders")                       # string keys, JSON values

big = (orders.filter(lambda k, v: v["amount"] >= 100)
             .map_values(lambda v: {**v, "vip": v["amount"] >= 400}))
routes = (big.split(name="big-")
             .branch(lambda k, v: v["country"] == "FR", name="fr")
             .default_branch(name="world"))
routes["big-fr"].to("big-orders-fr")
routes["big-world"].to("big-orders-world")

per_customer = (orders.group_by(lambda k, v: v["customer"])
                      .aggregate(orders=sl.agg.count(),
                                 total=sl.agg.sum("amount"),
                                 first_item=sl.agg.earliest_by_offset("item"),
                                 last_item=sl.agg.latest_by_offset("item"),
                                 name="orders-per-customer"))
per_customer.to_stream().to("customer-summary")

OUTPUTS = ["big-orders-fr", "big-orders-world", "customer-summary"]


def sample_orders(n: int) -> list[tuple[str, dict]]:
    rnd = random.Random(42)
    items = ["book", "lamp", "desk", "chair", "pen", "mug"]
    return [(f"order-{i}", {"id": i, "customer": f"customer-{rnd.randrange(8)}",
                            "amount": rnd.randrange(1, 500), "item": rnd.choice(items),
                            "country": rnd.choice(["FR", "DE", "US", "JP"])}) for i in range(n)]


def load(bootstrap: str, records: list[tuple[str, dict]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"})
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("loading orders", total=len(records))
        for i, (key, value) in enumerate(records, 1):
            producer.produce("orders", orjson.dumps(value), key.encode())
            if i % 500 == 0:
                producer.poll(0)
                progress.update(task, completed=i)
        producer.flush(30)
        progress.update(task, completed=len(records))


def read_all(bootstrap: str, topic: str) -> list[tuple[str, dict]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "quickstart-reader",
                         "enable.auto.commit": False})
    parts = [TopicPartition(topic, p, 0) for p in range(PARTITIONS)]
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    consumer.assign(parts)
    out: list[tuple[str, dict]] = []
    want = sum(ends.values())
    deadline = time.monotonic() + 20
    while len(out) < want and time.monotonic() < deadline:
        for m in consumer.consume(1000, 0.2):
            if m.error() is None:
                out.append((m.key().decode(), orjson.loads(m.value())))
    consumer.close()
    return out


def processed_everything(bootstrap: str) -> bool:
    """Every input of the app (orders, and the repartition topic) is committed to its end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "quickstart"})
    try:
        tps = [TopicPartition(t, p) for t in app.topology.source_topics() for p in range(PARTITIONS)]
        committed = consumer.committed(tps, timeout=5)
        ends = [consumer.get_watermark_offsets(tp, timeout=5)[1] for tp in tps]
        return all(e == 0 or c.offset == e for c, e in zip(committed, ends))
    except KafkaException:
        return False  # the repartition topic is created when the app starts
    finally:
        consumer.close()


def main() -> None:
    broker = app.embedded_broker()
    for topic in ["orders", *OUTPUTS]:
        broker.create_topic(topic, PARTITIONS)
    console.print(f"[bold]streamlet quickstart[/] — embedded broker at {broker.bootstrap_servers}\n")
    console.print(app.describe(), highlight=False)
    records = sample_orders(ORDERS)
    load(broker.bootstrap_servers, records)

    started = time.monotonic()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            app.run()
        except BaseException as exc:  # shown below
            errors.append(exc)

    worker = threading.Thread(target=run, name="streamlet-app")
    worker.start()
    try:
        with console.status("processing orders…"):
            while not processed_everything(broker.bootstrap_servers) and time.monotonic() - started < 60:
                if errors:
                    break
                time.sleep(0.3)
    finally:
        app.stop()
        worker.join(30)
    if errors:
        raise SystemExit(f"the app failed: {errors[0]}")
    elapsed = time.monotonic() - started

    big_fr = read_all(broker.bootstrap_servers, "big-orders-fr")
    big_world = read_all(broker.bootstrap_servers, "big-orders-world")
    table = Table(title="big orders (amount >= 100), first 10 of each route")
    for col in ("route", "order", "customer", "amount", "country", "vip"):
        table.add_column(col)
    for route, rows in (("big-orders-fr", big_fr), ("big-orders-world", big_world)):
        for key, v in rows[:10]:
            table.add_row(route, key, v["customer"], str(v["amount"]), v["country"], "yes" if v["vip"] else "")
    console.print(table)

    latest: dict[str, dict] = {}
    for key, v in read_all(broker.bootstrap_servers, "customer-summary"):
        latest[key] = v
    summary = Table(title="orders per customer (a table: latest row per key)")
    for col in ("customer", "orders", "total", "first item", "last item"):
        summary.add_column(col)
    for customer in sorted(latest):
        row = latest[customer]
        summary.add_row(customer, str(row["orders"]), str(row["total"]), row["first_item"], row["last_item"])
    console.print(summary)

    expected_big = sum(1 for _, v in records if v["amount"] >= 100)
    got_orders = sum(row["orders"] for row in latest.values())
    console.print(f"{ORDERS} orders in, {len(big_fr) + len(big_world)} big orders out "
                  f"(expected {expected_big}); {got_orders} orders counted across {len(latest)} customers; "
                  f"processed in {elapsed:.1f} s")
    app.close()
    if len(big_fr) + len(big_world) < expected_big or got_orders != ORDERS:
        raise SystemExit("some orders are missing from the outputs")


if __name__ == "__main__":
    main()
