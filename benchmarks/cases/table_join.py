"""Case ``table-join``: an inner table–table join under ``records`` updates to its two tables (DESIGN §6).

Data: two table topics, ``bench-left`` (``{"name", "tier"}``) and
``bench-right`` (``{"plan", "limit"}``), ``partitions`` partitions each,
partitioned by key (co-partitioned), over ``keys`` string keys. ``records``
updates in all, each to either table with even odds (about half each) and a
random key; 2% of the updates to a key that table holds are deletes
(tombstones), never a delete of a key it does not hold. Update ``i`` of the
sequence has the Kafka timestamp ``t0 + i`` (``t0`` a day before the run),
so both topics' timestamps interleave in update order. The work::

    left, right = app.table(left_topic, name="left"), app.table(right_topic, name="right")
    left.join(right, lambda l, r: {**l, **r}, name="joined").to_stream().to(out)

Kafka Streams' ``KTableKTableJoin`` semantics: each update emits the joined
row when the other table holds the key, a tombstone when it deletes a row
the other table joins, nothing while the other table lacks the key.

Sides, each in a fresh process, state in a fresh temporary directory:

* ``raw-loop`` (the contract's baseline): one consumer of both topics,
  ``consume(10000)``, ``orjson``; each table in a dict cache of parsed rows
  (absent rows cached as ``None``; a miss reads rocksdict) and a dirty set;
  a record below its partition's next offset is a replay and skipped; the
  joined row ``orjson.dumps({**l, **r})`` or a tombstone produced with the
  key. Every ~1 s (streamlet's ``commit_interval_ms``): ``flush()``, one
  rocksdict ``WriteBatch`` of the changed rows (puts and deletes) and
  per-partition checkpoints, synchronous commit. The table topics are the
  tables' changelogs (as streamlet's source tables and Kafka Streams'
  source-topic reuse): no changelog topic. The same RocksDB options as
  streamlet.
* ``streamlet`` under ``app.run()``.
* ``kafka_streams`` (``--broker kafka``): the same join in Kafka Streams
  (source tables on their topics, ``REUSE_KTABLE_SOURCE_TOPICS``, default
  caching: its record caches fold the updates of a key within a commit
  interval, so it emits a different number of joined rows). One known
  difference, from those caches: when both tables delete a key within one
  commit interval, each side's delete reaches the join after the other
  table's store already lacks the key, so neither emits the tombstone and
  the last joined row stays. Its check allows such keys (counted as
  ``kafka_streams_stale_rows``); every other key must end as expected.

Timing: from partition assignment until every update is processed and a
final commit has made outputs and state durable.

Checks: the last record per key of each side's output topic (a tombstone:
no row) must be the join of both tables' final rows, computed here from the
generated updates, for every key. How many records each side emits depends
on how the two topics' batches interleave and is reported, not compared.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from typing import Any, Iterator

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import KAFKA_STREAMS, Window, best, measure, raw_clients, read_topic, run_app_until
from benchmarks.cases._common import kafka_streams_extra, kafka_streams_fields, summary_rows, with_kafka_streams
from benchmarks.harness import BenchError, check_fits, err_console, load, open_broker, side_entry, tune_gc

BASELINE = "raw-loop"
LEFT, RIGHT = "bench-left", "bench-right"
TIERS = ("gold", "silver", "bronze")
PLANS = ("free", "pro", "team", "enterprise")
#: the share of updates to a key its table holds that delete it
DELETES = 0.02
SIDES = {"raw": "raw-loop", "streamlet": "streamlet"}
#: bytes of a typical left / right value, with the key, for the size check
ROW_BYTES = len(b'{"name":"name-123456","tier":"silver"}') + len(b"user-05000")
JOINED_BYTES = len(b'{"name":"name-123456","tier":"silver","plan":"enterprise","limit":12345}') + len(b"user-05000")


def joiner(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    """The joined row: both rows' fields."""
    return {**left, **right}


def make_updates(records: int, keys: int, which: str, t0: int,
                 seed: int = 42) -> tuple[Iterator[tuple[bytes, Any, int]], list[int], dict[bytes, Any]]:
    """The updates of table ``which`` (``"left"`` / ``"right"``) among ``records`` updates to both
    (the same random sequence for either), as ``(key, value or None, timestamp)``: update ``i`` of the
    sequence is stamped ``t0 + i``, so that the two topics' timestamps interleave as the updates were
    made (Kafka Streams picks a task's next record by timestamp); a one-item list
    that ends up holding how many there were, and a dict that ends up holding the join of both tables'
    final rows by key bytes (rows absent from either table left out)."""
    import orjson

    count = [0]
    joined: dict[bytes, Any] = {}

    def gen() -> Iterator[tuple[bytes, Any]]:
        rnd = random.Random(seed)
        rand, randrange = rnd.random, rnd.randrange
        key_bytes = [f"user-{i:05d}".encode() for i in range(keys)]
        tables: tuple[dict[int, Any], dict[int, Any]] = ({}, {})
        mine_is_left = which == "left"
        n = 0
        for i in range(records):
            to_left = rand() < 0.5
            k = randrange(keys)
            table = tables[0] if to_left else tables[1]
            if k in table and rand() < DELETES:
                del table[k]
                value = None
            else:
                row = ({"name": f"name-{i}", "tier": TIERS[i % 3]} if to_left
                       else {"plan": PLANS[i % 4], "limit": randrange(100_000)})
                table[k] = row
                value = row
            if to_left == mine_is_left:
                n += 1
                yield key_bytes[k], None if value is None else orjson.dumps(value), t0 + i
        count[0] = n
        left, right = tables
        for k, lv in left.items():
            if k in right:
                joined[key_bytes[k]] = joiner(lv, right[k])

    return gen(), count, joined


def final_rows(rows: list[tuple[Any, Any]]) -> dict[bytes, Any]:
    """The last value per key of an output topic, parsed; a key whose last record is a tombstone is absent."""
    import orjson

    last: dict[bytes, Any] = {}
    for kb, vb in rows:
        last[kb] = vb
    return {kb: orjson.loads(vb) for kb, vb in last.items() if vb is not None}


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    check_fits(opts.records // 2, opts.partitions, ROW_BYTES, "each table topic", opts.broker)
    check_fits(opts.records, opts.partitions, JOINED_BYTES, "output", opts.broker)
    sides = with_kafka_streams(SIDES, opts.broker)
    topics = {LEFT: opts.partitions, RIGHT: opts.partitions}
    for r in range(opts.repeat):
        for side in sides:
            topics[f"bench-out-{side}-{r}"] = opts.partitions
    with open_broker(topics, opts.broker) as broker:
        t0 = time.perf_counter()
        counts: dict[str, int] = {}
        first_ts = int(time.time() * 1000) - 86_400_000  # a day ago: well within a real broker's retention
        for which, topic in (("left", LEFT), ("right", RIGHT)):
            data, count, expected = make_updates(opts.records, opts.keys, which, first_ts)
            # the loader counts what it produced; the generator's length is known only at its end
            load(broker.bootstrap, topic, data, opts.records // 2, timestamped=True)
            counts[which] = count[0]
            broker.check_complete(topic, count[0])
        load_s = time.perf_counter() - t0
        err_console.print(f"loaded {counts['left']:,} + {counts['right']:,} updates in {load_s:.1f} s; "
                          f"{len(expected):,} keys end joined")

        def params(side: str, r: int) -> dict[str, Any]:
            return {"bootstrap": broker.bootstrap, "inputs": [LEFT, RIGHT], "input": LEFT, "users": RIGHT,
                    "left": LEFT, "right": RIGHT, "records": opts.records, "group": f"bench-{side}-{r}",
                    "output": f"bench-out-{side}-{r}", "partitions": opts.partitions,
                    "config": opts.client_config}

        def check(side: str, r: int, res: Any) -> None:
            topic = f"bench-out-{side}-{r}"
            rows = read_topic(broker.bootstrap, topic, opts.partitions)
            broker.check_complete(topic, len(rows))  # nothing dropped by the embedded broker
            got = final_rows(rows)
            res.extra["outputs"] = len(rows)
            res.extra["tombstones"] = sum(1 for _, vb in rows if vb is None)
            if side == KAFKA_STREAMS:  # rows both tables deleted within one commit interval stay (docstring)
                stale = got.keys() - expected.keys()
                res.extra["stale_rows"] = len(stale)
                got = {kb: v for kb, v in got.items() if kb not in stale}
            if got != expected:
                missing = len(expected.keys() - got.keys())
                extra = len(got.keys() - expected.keys())
                wrong = sum(1 for kb in expected.keys() & got.keys() if got[kb] != expected[kb])
                raise BenchError(f"{side}: {len(got):,} joined rows at the end, expected {len(expected):,}: "
                                 f"{missing:,} missing, {extra:,} not joined any more, {wrong:,} different")

        runs = measure("table-join", sides, opts.repeat, params, opts.profile_dir, check)
    b = best(runs)
    raw, sl = b["raw"], b["streamlet"]
    rows, median_ratio = summary_rows(runs, sides, opts.records, "streamlet", "raw")
    outs = " / ".join(f"{b[s].extra.get('outputs', 0):,} ({b[s].extra.get('tombstones', 0):,} tombstones)"
                      for s in sides)
    details = [
        ("updates: left + right / partitions / keys",
         f"{counts['left']:,} + {counts['right']:,} / {opts.partitions} / {opts.keys:,}"),
        ("input load", f"{load_s:.1f} s"),
        ("keys joined at the end (each side, checked)", f"{len(expected):,}"),
        (f"outputs: {' / '.join(sides.values())}", outs),
        *([("Kafka Streams: joined rows left without their tombstone",
            f"{b[KAFKA_STREAMS].extra.get('stale_rows', 0):,} keys (both tables deleted them within one "
            "commit interval: its record caches)")] if KAFKA_STREAMS in b else []),
        *rows,
    ]
    return CaseResult(
        case="table-join", records=opts.records, streamlet_rps=sl.rps, baseline=BASELINE,
        baseline_rps=raw.rps, peak_rss_mb=sl.peak_rss_mb, seconds=sl.seconds, details=details,
        extra={"partitions": opts.partitions, "left_updates": counts["left"], "right_updates": counts["right"],
               "joined_keys": len(expected), "outputs": sl.extra.get("outputs", 0),
               "baseline_outputs": raw.extra.get("outputs", 0), "baseline_seconds": round(raw.seconds, 3),
               "repeat": opts.repeat, "median_ratio": round(median_ratio, 3), "target_ratio": 0.6,
               "total_seconds": round(time.perf_counter() - t_start, 1), **kafka_streams_extra(runs),
               **({"kafka_streams_outputs": b[KAFKA_STREAMS].extra.get("outputs", 0),
                   "kafka_streams_stale_rows": b[KAFKA_STREAMS].extra.get("stale_rows", 0)}
                  if KAFKA_STREAMS in b else {})},
        **kafka_streams_fields(runs),
    )


# -- the sides --------------------------------------------------------------------------
@side_entry
def side_raw(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline: both tables in dict caches over one RocksDB, the join computed per update."""
    import orjson
    from rocksdict import Rdict, WriteBatch

    from streamlet.state.rocksdb import _options

    state_dir = tempfile.mkdtemp(prefix="bench-table-join-")
    window = Window()
    consumer, producer, failed = raw_clients(p, on_assign=lambda c, parts: window.start())
    db = Rdict(state_dir + "/db", _options())
    tune_gc()
    loads, dumps = orjson.loads, orjson.dumps
    consume, produce, poll, db_get = consumer.consume, producer.produce, producer.poll, db.get
    position, assignment = consumer.position, consumer.assignment
    out, remaining, left_topic, parts = p["output"], p["records"], p["left"], p["partitions"]
    # per table: key bytes -> parsed row, or None when the table does not hold the key (read once from RocksDB)
    caches: tuple[dict[bytes, Any], dict[bytes, Any]] = ({}, {})
    prefixes = (b"L", b"R")
    dirty: dict[bytes, Any] = {}  # store key (table prefix + key) -> value bytes or None (delete)
    next_offset = ([0] * parts, [0] * parts)  # per table and partition: below it, applied already
    positions: Any = None
    next_commit = time.monotonic() + 1.0
    missing = object()

    def row_of(side: int, kb: bytes) -> Any:
        raw = db_get(prefixes[side] + kb)
        row = caches[side][kb] = None if raw is None else loads(raw)
        return row

    def flush_state(commit: bool) -> None:
        nonlocal dirty
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        for sk, vb in dirty.items():
            if vb is None:
                delete(sk)
            else:
                put(sk, vb)
        dirty = {}
        for side in (0, 1):
            for part, off in enumerate(next_offset[side]):
                put(b"\x00checkpoint:%d:%d" % (side, part), b"%d" % off)
        if commit:
            producer.flush()  # outputs acknowledged before the store and the offsets move on
        db.write(batch)
        if commit and positions:
            consumer.commit(offsets=positions, asynchronous=False)

    while remaining > 0:
        msgs = consume(10_000, 0.2)
        if not msgs:
            continue
        for m in msgs:
            if m.error() is not None:
                remaining += 1
                continue
            side = 0 if m.topic() == left_topic else 1
            part, offset = m.partition(), m.offset()
            nexts = next_offset[side]
            if offset < nexts[part]:
                continue  # applied before: a replay
            nexts[part] = offset + 1
            kb, vb = m.key(), m.value()
            mine = caches[side]
            old = mine.get(kb, missing)
            if old is missing:
                old = row_of(side, kb)
            new = None if vb is None else loads(vb)
            if new is not None or old is not None:
                mine[kb] = new
                dirty[prefixes[side] + kb] = vb
            theirs = caches[1 - side].get(kb, missing)
            if theirs is missing:
                theirs = row_of(1 - side, kb)
            if theirs is None:
                continue  # inner join: nothing while the other table lacks the key
            if new is None:
                joined = None  # a tombstone
            elif side == 0:
                joined = dumps({**new, **theirs})
            else:
                joined = dumps({**theirs, **new})
            try:
                produce(out, joined, kb)
            except BufferError:
                poll(0.05)
                produce(out, joined, kb)
        remaining -= len(msgs)
        positions = position(assignment())
        if time.monotonic() >= next_commit:
            flush_state(True)
            next_commit = time.monotonic() + 1.0
    flush_state(True)
    window.stop()
    consumer.close()
    db.close()
    shutil.rmtree(state_dir, ignore_errors=True)
    if failed:
        raise RuntimeError(f"{len(failed)} deliveries failed: {failed[0]}")
    return window.result(p["records"])


@side_entry
def side_streamlet(p: dict[str, Any]) -> dict[str, Any]:
    """The same join as a streamlet topology, run by ``app.run()``."""
    import streamlet as sl

    state_dir = tempfile.mkdtemp(prefix="bench-table-join-")
    app = sl.App(p["group"], brokers=p["bootstrap"], state_dir=state_dir, config=p.get("config") or None)
    left = app.table(p["left"], name="left")
    right = app.table(p["right"], name="right")
    left.join(right, joiner, name="joined").to_stream().to(p["output"])
    out = run_app_until(app, p["records"], Window(), finish_in_runner=True)
    shutil.rmtree(state_dir, ignore_errors=True)
    return out
