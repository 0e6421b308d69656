"""Quickstart: orders in; big orders enriched and routed by country; a running summary per
customer — all on the embedded broker, nothing to set up.

    python examples/quickstart.py

It starts an embedded Kafka-protocol broker in this process, loads sample
orders (with a progress bar), runs the topology in a background thread until
every order is processed, prints what came out, and exits 0 (1 if anything is
missing).
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter

# The demo is self-contained: settings exported for other runs (STREAMLET_BROKERS=kafka:9092, ...)
# would point it elsewhere, since the environment wins over App(...) arguments.
IGNORED_SETTINGS = sorted(k for k in os.environ if k.startswith("STREAMLET_"))
for _name in IGNORED_SETTINGS:
    del os.environ[_name]

import orjson  # noqa: E402
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

import streamlet as sl  # noqa: E402

ORDERS = 5_000
PARTITIONS = 4
BIG = 100           # an order of at least this amount is "big"
VIP = 400           # ... and a VIP order from this amount on
TIMEOUT_S = 60      # give up (exit 1) if processing takes longer than this
console = Console(soft_wrap=True)
STATE_DIR = tempfile.mkdtemp(prefix="streamlet-quickstart-")

# -- the topology ---------------------------------------------------------------
app = sl.App("quickstart", brokers="embedded", state_dir=STATE_DIR, commit_interval_ms=200)
orders = app.stream("orders")                       # string keys, JSON values

big = (orders.filter(lambda k, v: v["amount"] >= BIG)                     # keep big orders
             .map_values(lambda v: {**v, "vip": v["amount"] >= VIP}))     # enrich them
routes = (big.split(name="big-")                                          # route by country
             .branch(lambda k, v: v["country"] == "FR", name="fr")
             .default_branch(name="world"))
routes["big-fr"].to("big-orders-fr")
routes["big-world"].to("big-orders-world")

per_customer = (orders.group_by(lambda k, v: v["customer"])               # re-key: repartition topic
                      .aggregate(orders=sl.agg.count(),                   # RocksDB store + changelog
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
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("loading orders", total=len(records))
        for i, (key, value) in enumerate(records, 1):
            producer.produce("orders", orjson.dumps(value), key.encode())
            if i % 250 == 0:
                producer.poll(0)
                progress.update(task, completed=i)
        left = producer.flush(30)
        if left:
            raise SystemExit(f"{left} orders could not be written to the embedded broker")
        progress.update(task, completed=len(records))


def read_all(bootstrap: str, topic: str) -> list[tuple[str, dict]]:
    """Every record of ``topic``, partition by partition, up to its end offset now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "quickstart-reader",
                         "enable.auto.commit": False})
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
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
    """Every input of the app (orders, and the repartition topic) is committed to its end.

    The app commits an offset only after the outputs of the records before it are
    acknowledged, so this also means every output is in.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": app.application_id})
    try:
        tps = [TopicPartition(t, p) for t in app.topology.source_topics() for p in range(PARTITIONS)]
        committed = consumer.committed(tps, timeout=5)
        ends = [consumer.get_watermark_offsets(tp, timeout=5)[1] for tp in tps]
        return all(e == 0 or c.offset == e for c, e in zip(committed, ends))
    except KafkaException:
        return False  # e.g. the repartition topic does not exist until the app has started
    finally:
        consumer.close()


def run_until_processed(bootstrap: str) -> float:
    """Run the app in a background thread until every order is processed; return the seconds taken."""
    started = time.monotonic()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            app.run()
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=run, name="streamlet-app", daemon=True)
    worker.start()
    try:
        with console.status("processing orders…"):
            while not errors and time.monotonic() - started < TIMEOUT_S:
                if processed_everything(bootstrap):
                    break
                time.sleep(0.2)
    finally:
        app.stop()
        worker.join(30)
    if errors:
        raise SystemExit(f"the app failed: {type(errors[0]).__name__}: {errors[0]}")
    if worker.is_alive():
        raise SystemExit("the app did not stop within 30 s")
    return time.monotonic() - started


def show(bootstrap: str, records: list[tuple[str, dict]], elapsed: float) -> bool:
    """Print the outputs; return True if they are complete and correct."""
    big_fr = read_all(bootstrap, "big-orders-fr")
    big_world = read_all(bootstrap, "big-orders-world")
    summary_updates = read_all(bootstrap, "customer-summary")

    table = Table(title=f"big orders (amount ≥ {BIG}) by route — the first 8 of each")
    for col, justify in (("topic", "left"), ("order", "left"), ("customer", "left"),
                         ("amount", "right"), ("country", "left"), ("vip", "center")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for route, rows in (("big-orders-fr", big_fr), ("big-orders-world", big_world)):
        for key, v in rows[:8]:
            table.add_row(route, key, v["customer"], str(v["amount"]), v["country"], "★" if v["vip"] else "")
        table.add_section()
    console.print(table)

    latest: dict[str, dict] = {}
    for key, v in summary_updates:  # a table's changes: the last one per key is the current row
        latest[key] = v
    summary = Table(title="orders per customer (a table: the latest row per key)")
    for col, justify in (("customer", "left"), ("orders", "right"), ("total", "right"),
                         ("first item", "left"), ("last item", "left")):
        summary.add_column(col, justify=justify)  # type: ignore[arg-type]
    for customer in sorted(latest):
        row = latest[customer]
        summary.add_row(customer, str(row["orders"]), f"{row['total']:,}", row["first_item"], row["last_item"])
    summary.add_section()
    summary.add_row("all", str(sum(r["orders"] for r in latest.values())),
                    f"{sum(r['total'] for r in latest.values()):,}", "", "", style="bold")
    console.print(summary)

    expected_big = Counter("big-orders-fr" if v["country"] == "FR" else "big-orders-world"
                           for _, v in records if v["amount"] >= BIG)
    totals = Table(title="totals", show_header=True)
    for col, justify in (("topic", "left"), ("records", "right"), ("expected", "right")):
        totals.add_column(col, justify=justify)  # type: ignore[arg-type]
    totals.add_row("orders (in)", str(len(records)), "")
    totals.add_row("big-orders-fr", str(len(big_fr)), str(expected_big["big-orders-fr"]))
    totals.add_row("big-orders-world", str(len(big_world)), str(expected_big["big-orders-world"]))
    totals.add_row("customer-summary", f"{len(summary_updates)} updates", f"{len(latest)} customers")
    console.print(totals)

    counted = sum(r["orders"] for r in latest.values())
    big_out = len(big_fr) + len(big_world)
    console.print(f"{len(records)} orders in, {big_out} big orders out "
                  f"(expected {sum(expected_big.values())}); {counted} orders counted across "
                  f"{len(latest)} customers; processed in {elapsed:.1f} s")
    # at-least-once may repeat an output after a failure, never lose one
    return (len(big_fr) >= expected_big["big-orders-fr"] and len(big_world) >= expected_big["big-orders-world"]
            and counted == len(records))


def main() -> int:
    if IGNORED_SETTINGS:
        console.print(f"[dim]ignoring {', '.join(IGNORED_SETTINGS)}: the quickstart runs on its own "
                      "embedded broker[/]")
    try:
        broker = app.embedded_broker()
        for topic in ["orders", *OUTPUTS]:
            broker.create_topic(topic, PARTITIONS)
        bootstrap = broker.bootstrap_servers
        console.print(f"[bold]streamlet quickstart[/] — embedded broker at {bootstrap}\n")
        console.print(app.describe(), highlight=False)
        console.print()
        records = sample_orders(ORDERS)
        load(bootstrap, records)
        elapsed = run_until_processed(bootstrap)
        complete = show(bootstrap, records, elapsed)
    finally:
        app.close()
        shutil.rmtree(STATE_DIR, ignore_errors=True)
    if not complete:
        console.print("[bold red]some orders are missing from the outputs[/]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
