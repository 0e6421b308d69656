"""Case ``join``: a stream joined with a 10,000-row table, JSON in and out (DESIGN §6).

Data: the ``stateless`` data set as the stream (orders keyed by user), and a
table topic of one row per key (``{"name", "tier", "country"}``), both with
``partitions`` partitions and partitioned by key (co-partitioned). Every
order finds its user. The work::

    users = app.table(users_topic, name="users")
    app.stream(orders).join(users, add_tier).to(out)   # add_tier: v["tier"] = u["tier"]

The table must be complete before the stream is joined (otherwise an inner
join drops what it cannot find yet, and the output depends on timing): each
side's group has the table topic's end committed before it starts, so
streamlet restores the table into RocksDB up to there before processing
(Kafka Streams' source-table rule), and the raw loop loads it first.

Sides, each in a fresh process:

* ``raw-loop`` (the contract's baseline): reads the whole table topic first
  (``assign`` + ``consume(10000)``) into a dict of parsed rows and one
  rocksdict ``WriteBatch`` (the table kept on disk, as streamlet does), then
  the ``stateless`` loop: ``consume(10000)``, orjson, a dict lookup by the
  key bytes, the field added inline, ``produce``, flush + commit every ~1 s.
* ``streamlet`` under ``app.run()``.

Timing: from partition assignment (the table load / restore included) until
every order is processed and every output acknowledged.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from typing import Any, Iterator

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import Window, best, measure, raw_clients, run_app_until, summary_rows
from benchmarks.cases._common import kafka_streams_extra, kafka_streams_fields, with_kafka_streams
from benchmarks.cases.stateless import make_records, record_size
from benchmarks.harness import open_broker, check_fits, err_console, load, side_entry, tune_gc

BASELINE = "raw-loop"
INPUT = "bench-input"
USERS = "bench-users"
TIERS = ("gold", "silver", "bronze")
COUNTRIES = ("DE", "FR", "US", "JP", "BR")
SIDES = {"raw": "raw-loop", "streamlet": "streamlet"}


def make_users(keys: int, seed: int = 7) -> Iterator[tuple[bytes, bytes]]:
    import orjson

    rnd = random.Random(seed)
    for i in range(keys):
        yield (f"user-{i:05d}".encode(),
               orjson.dumps({"name": f"name-{i}", "tier": rnd.choice(TIERS), "country": rnd.choice(COUNTRIES)}))


def commit_table_end(bootstrap: str, group: str, topic: str, partitions: int) -> None:
    """Commit the end of ``topic`` for ``group``: a source table is restored up to the committed offset."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        ends = [TopicPartition(topic, i, c.get_watermark_offsets(TopicPartition(topic, i), timeout=10,
                                                                 cached=False)[1]) for i in range(partitions)]
        c.commit(offsets=ends, asynchronous=False)
    finally:
        c.close()


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    size = record_size(opts.keys)
    check_fits(opts.records, opts.partitions, size, "input", opts.broker)
    check_fits(opts.records, opts.partitions, size + len(b',"tier":"silver"'), "output", opts.broker)
    sides = with_kafka_streams(SIDES, opts.broker)
    topics = {INPUT: opts.partitions, USERS: opts.partitions}
    for r in range(opts.repeat):
        for side in sides:
            topics[f"bench-out-{side}-{r}"] = opts.partitions
    with open_broker(topics, opts.broker) as broker:
        data, _ = make_records(opts.records, opts.keys)
        load_s = load(broker.bootstrap, INPUT, data, opts.records)
        load(broker.bootstrap, USERS, make_users(opts.keys), opts.keys)
        broker.check_complete(INPUT, opts.records)
        broker.check_complete(USERS, opts.keys)
        err_console.print(f"loaded {opts.records:,} orders and {opts.keys:,} users in {load_s:.1f} s")

        def params(side: str, r: int) -> dict[str, Any]:
            group = f"bench-{side}-{r}"
            commit_table_end(broker.bootstrap, group, USERS, opts.partitions)
            return {"bootstrap": broker.bootstrap, "input": INPUT, "users": USERS, "records": opts.records,
                    "group": group, "output": f"bench-out-{side}-{r}", "partitions": opts.partitions,
                    "config": opts.client_config}

        def check(side: str, r: int, res: Any) -> None:
            broker.check_complete(f"bench-out-{side}-{r}", opts.records)

        runs = measure("join", sides, opts.repeat, params, opts.profile_dir, check)
    b = best(runs)
    raw, sl = b["raw"], b["streamlet"]
    rows, median_ratio = summary_rows(runs, sides, opts.records, "streamlet", "raw")
    details = [
        ("records / partitions / table rows", f"{opts.records:,} / {opts.partitions} / {opts.keys:,}"),
        ("input load", f"{load_s:.1f} s"),
        ("table load: streamlet restore / raw-loop", f"{sl.extra.get('table_seconds', 0):.2f} s / "
                                                     f"{raw.extra.get('table_seconds', 0):.2f} s"),
        *rows,
    ]
    return CaseResult(
        case="join", records=opts.records, streamlet_rps=sl.rps, baseline=BASELINE,
        baseline_rps=raw.rps, peak_rss_mb=sl.peak_rss_mb, seconds=sl.seconds, details=details,
        extra={"partitions": opts.partitions, "table_rows": opts.keys, "outputs": opts.records,
               "baseline_seconds": round(raw.seconds, 3), "repeat": opts.repeat,
               "median_ratio": round(median_ratio, 3), "target_ratio": 0.6,
               "total_seconds": round(time.perf_counter() - t_start, 1), **kafka_streams_extra(runs)},
        **kafka_streams_fields(runs),
    )


# -- the sides --------------------------------------------------------------------------
def _load_table(p: dict[str, Any], db: Any) -> dict[bytes, Any]:
    """The whole table topic: parsed rows by key bytes, and one WriteBatch into ``db``."""
    import orjson
    from confluent_kafka import Consumer, TopicPartition
    from rocksdict import WriteBatch

    from streamlet.state.restore import restore_consumer_config

    c = Consumer(restore_consumer_config(p["bootstrap"], **{"group.id": p["group"] + "-table"}))
    parts = range(p["partitions"])
    ends = {i: c.get_watermark_offsets(TopicPartition(p["users"], i), timeout=10, cached=False)[1] for i in parts}
    c.assign([TopicPartition(p["users"], i, 0) for i in parts if ends[i] > 0])
    left = {i for i in parts if ends[i] > 0}
    table: dict[bytes, Any] = {}
    batch = WriteBatch(raw_mode=True)
    loads = orjson.loads
    while left:
        for m in c.consume(10_000, 0.1):
            if m.error() is not None:
                continue
            kb, vb = m.key(), m.value()
            batch.put(kb, vb)
            table[kb] = loads(vb)
            if m.offset() + 1 >= ends[m.partition()]:
                left.discard(m.partition())
    db.write(batch)
    c.close()
    return table


@side_entry
def side_raw(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline: the table in a dict (and RocksDB), the stream joined by a plain lookup."""
    import orjson
    from rocksdict import Rdict

    from streamlet.state.rocksdb import _options

    state_dir = tempfile.mkdtemp(prefix="bench-join-")
    db = Rdict(state_dir + "/db", _options())
    window = Window()
    consumer, producer, failed = raw_clients(p, on_assign=lambda c, parts: window.start())
    tune_gc()
    loads, dumps = orjson.loads, orjson.dumps
    consume, produce, poll = consumer.consume, producer.produce, producer.poll
    position, assignment = consumer.position, consumer.assignment
    out, remaining = p["output"], p["records"]
    table: dict[bytes, Any] | None = None
    table_s = 0.0
    positions: Any = None
    next_commit = time.monotonic() + 1.0
    while remaining > 0:
        msgs = consume(10_000, 0.2)
        if table is None and window.t0:
            t0 = time.perf_counter()
            table = _load_table(p, db)
            table_s = time.perf_counter() - t0
        if not msgs:
            continue
        assert table is not None
        get = table.get
        for m in msgs:
            if m.error() is not None:
                remaining += 1
                continue
            kb = m.key()
            u = get(kb)
            if u is None:
                continue
            v = loads(m.value())
            v["tier"] = u["tier"]
            try:
                produce(out, dumps(v), kb)
            except BufferError:
                poll(0.05)
                produce(out, dumps(v), kb)
        remaining -= len(msgs)
        positions = position(assignment())
        if time.monotonic() >= next_commit:
            producer.flush()
            consumer.commit(offsets=positions, asynchronous=False)
            next_commit = time.monotonic() + 1.0
    producer.flush()
    window.stop()
    consumer.commit(offsets=positions, asynchronous=False)
    consumer.close()
    db.close()
    shutil.rmtree(state_dir, ignore_errors=True)
    if failed:
        raise RuntimeError(f"{len(failed)} deliveries failed: {failed[0]}")
    res = window.result(p["records"])
    res["table_seconds"] = round(table_s, 3)
    return res


@side_entry
def side_streamlet(p: dict[str, Any]) -> dict[str, Any]:
    """The same join as a streamlet topology, run by ``app.run()``."""
    import logging

    import streamlet as sl

    state_dir = tempfile.mkdtemp(prefix="bench-join-")
    app = sl.App(p["group"], brokers=p["bootstrap"], state_dir=state_dir, config=p.get("config") or None)

    def add_tier(v: dict[str, Any], u: dict[str, Any]) -> dict[str, Any]:
        v["tier"] = u["tier"]  # the freshly parsed value of a stream that does not branch
        return v

    users = app.table(p["users"], name="users")
    app.stream(p["input"]).join(users, add_tier).to(p["output"])
    restored: list[float] = []

    class _Restored(logging.Handler):  # the summary line of each store partition restored
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("store users partition"):
                restored.append(time.perf_counter())

    logging.getLogger("streamlet.state").addHandler(_Restored(logging.INFO))
    logging.getLogger("streamlet.state").setLevel(logging.INFO)
    window = Window()
    out = run_app_until(app, p["records"], window, finish_in_runner=False)
    shutil.rmtree(state_dir, ignore_errors=True)
    if restored:
        out["table_seconds"] = round(max(restored) - window.t0, 3)
    return out
