"""Case ``stateful``: count + earliest/latest by offset per key, RocksDB state with a changelog (DESIGN §6).

Data: the ``stateless`` data set (``records`` JSON objects of ~90 bytes over
``keys`` string keys, ``partitions`` partitions). The work, per key::

    app.stream(input).group_by_key().aggregate(
        n=sl.agg.count(), first=sl.agg.earliest_by_offset("amount"),
        last=sl.agg.latest_by_offset("amount"), name="stats")

No output topic: the aggregate table is the product (read through
interactive queries or its changelog), and every changed key reaches the
changelog once per commit. With ``.to_stream().to(out)`` one output record
per input record would be common work on both sides that dilutes the
difference (the produce path is measured by ``stateless``).

Sides, each in a fresh process, state in a fresh temporary directory:

* ``raw-loop`` (the contract's baseline): ``consume(10000)``, orjson, a dict
  cache of decoded rows that is also the read cache, a dirty set; every
  ~1 s (streamlet's ``commit_interval_ms``): one changelog record per
  changed key (msgpack, to the input's partition), ``flush()``, one
  rocksdict ``WriteBatch`` of the changed rows plus per-partition changelog
  checkpoints, synchronous commit. Rows are streamlet's ``[offset, state,
  seq]`` with the same states (replay protection: a record at or below the
  stored offset is skipped), updated in place; the same RocksDB options.
* ``raw-loop, flush per batch``: the same loop writing the changelog records
  and the WriteBatch after every consumed batch (DESIGN §6's literal
  wording); more changelog records and writes, so slower: a reference only.
* ``streamlet`` under ``app.run()``.
* ``streamlet, group_by``: the same aggregation through a repartition topic,
  ``app.stream(input).group_by(lambda k, v: k).aggregate(...)`` (the same key,
  so the same result): every record is produced to
  ``<app>-stats-repartition``, consumed back and aggregated. It shows the
  group_by path beside ``group_by_key`` (issue #12); its rate counts input
  records, not the records the runner consumed (twice as many). Not part of
  the contract's keys: ``group_by_rps`` and ``group_by_ratio`` (to the raw
  loop) in the JSON line, a row in the details table.

Timing: from partition assignment until every record is processed and a
final commit has made the state durable (changelog acknowledged, stores
written, offsets committed). After timing, each side reads its stores back
and reports the sum of the counts, which must equal ``records``.

Memory: the streamlet side is also run on the first quarter of the input;
both peak RSS figures are reported (bounded by keys, not records).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from typing import Any

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import Window, best, measure, raw_clients, run_app_until, summary_rows
from benchmarks.cases._common import kafka_streams_extra, kafka_streams_fields, with_kafka_streams
from benchmarks.cases.stateless import make_records, record_size
from benchmarks.harness import BenchError, open_broker, check_fits, err_console, load, side_entry, tune_gc

BASELINE = "raw-loop"
INPUT = "bench-input"
FIELD = "amount"
STORE = "stats"
SIDES = {"raw": "raw-loop", "raw_batch": "raw-loop, flush per batch", "streamlet": "streamlet",
         "group_by": "streamlet, group_by"}
QUARTER = "streamlet_quarter"


def load_input(broker: Any, opts: Options) -> float:
    """The ``stateless`` data set into :data:`INPUT` (checked complete); the seconds the load took."""
    data, _ = make_records(opts.records, opts.keys)
    load_s = load(broker.bootstrap, INPUT, data, opts.records)
    broker.check_complete(INPUT, opts.records)
    err_console.print(f"loaded {opts.records:,} records in {load_s:.1f} s")
    return load_s


def side_params(broker: Any, opts: Options, group: str, records: int | None = None) -> dict[str, Any]:
    """The parameters every side of this workload takes (group ``group``; ``records``: all by default)."""
    return {"bootstrap": broker.bootstrap, "input": INPUT, "records": opts.records if records is None else records,
            "group": group, "partitions": opts.partitions, "config": opts.client_config}


def check_stored_counts(side: str, res: Any) -> Any:
    """The counts a side read back from its stores add up to the input records it processed (returned)."""
    total, processed = res.extra.get("total_count"), res.extra.get("processed", res.records)
    if total != processed:
        raise BenchError(f"{side}: the stored counts add up to {total}, expected {processed}")
    return processed


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    check_fits(opts.records, opts.partitions, record_size(opts.keys), "input", opts.broker)
    sides = with_kafka_streams(SIDES, opts.broker)
    topics = {INPUT: opts.partitions}
    for r in range(opts.repeat):
        for side in ("raw", "raw_batch"):
            topics[f"bench-{side}-{r}-changelog"] = opts.partitions
    with open_broker(topics, opts.broker) as broker:
        load_s = load_input(broker, opts)

        def params(side: str, r: int, records: int = opts.records) -> dict[str, Any]:
            return {**side_params(broker, opts, f"bench-{side}-{r}", records),
                    "changelog": f"bench-{side}-{r}-changelog"}

        def check(side: str, r: int, res: Any) -> None:
            processed = check_stored_counts(side, res)
            hop = res.extra.get("repartition_records")
            if hop is not None and not hop == processed == res.records:
                raise BenchError(f"{side}: {processed:,} input and {hop:,} repartition records processed, "
                                 f"expected {res.records:,} of each")

        runs = measure("stateful", sides, opts.repeat, params, opts.profile_dir, check)
        quarter = max(opts.records // 4, 1)
        small = measure("stateful", {QUARTER: f"streamlet on {quarter:,} records"}, 1,
                        lambda side, r: params(side, r, quarter), None, check)[QUARTER][0]
    b = best(runs)
    raw, per_batch, sl, gb = b["raw"], b["raw_batch"], b["streamlet"], b["group_by"]
    rows, median_ratio = summary_rows(runs, sides, opts.records, "streamlet", "raw")
    details = [
        ("records / partitions / keys", f"{opts.records:,} / {opts.partitions} / {opts.keys:,}"),
        ("input load", f"{load_s:.1f} s"),
        ("changelog records: streamlet / raw-loop / flush per batch",
         f"{sl.extra.get('changelog_records', 0):,} / {raw.extra.get('changelog_records', 0):,} / "
         f"{per_batch.extra.get('changelog_records', 0):,}"),
        ("raw-loop, flush per batch", f"{per_batch.rps:,.0f} rec/s (streamlet: {sl.rps / per_batch.rps:.2f}× it)"),
        ("streamlet, group_by (repartition topic)",
         f"{gb.rps:,.0f} rec/s ({gb.rps / raw.rps:.2f}× raw-loop, {gb.rps / sl.rps:.2f}× group_by_key)"),
        ("peak RSS, streamlet: records/4 → records",
         f"{small.peak_rss_mb:.0f} MB ({quarter:,}) → {sl.peak_rss_mb:.0f} MB ({opts.records:,})"),
        *rows,
    ]
    return CaseResult(
        case="stateful", records=opts.records, streamlet_rps=sl.rps, baseline=BASELINE,
        baseline_rps=raw.rps, peak_rss_mb=sl.peak_rss_mb, seconds=sl.seconds, details=details,
        extra={"partitions": opts.partitions, "baseline_seconds": round(raw.seconds, 3),
               "flush_per_batch_rps": round(per_batch.rps, 1), "group_by_rps": round(gb.rps, 1),
               "group_by_ratio": round(gb.rps / raw.rps, 3), "repeat": opts.repeat,
               "median_ratio": round(median_ratio, 3), "target_ratio": 0.8,
               "peak_rss_mb_quarter": round(small.peak_rss_mb, 1), "quarter_records": quarter,
               "total_seconds": round(time.perf_counter() - t_start, 1), **kafka_streams_extra(runs)},
        **kafka_streams_fields(runs),
    )


# -- the sides --------------------------------------------------------------------------
def _raw(p: dict[str, Any], per_batch: bool) -> dict[str, Any]:
    import msgpack
    import orjson
    from rocksdict import Rdict, WriteBatch

    from streamlet.state.rocksdb import _options

    state_dir = tempfile.mkdtemp(prefix="bench-stateful-")
    window = Window()
    consumer, producer, failed = raw_clients(p, on_assign=lambda c, parts: window.start())
    db = Rdict(state_dir + "/db", _options())
    tune_gc()
    loads, pack, unpack = orjson.loads, msgpack.Packer(use_bin_type=True).pack, msgpack.unpackb
    consume, produce, poll, get = consumer.consume, producer.produce, producer.poll, db.get
    position, assignment = consumer.position, consumer.assignment
    changelog, remaining = p["changelog"], p["records"]
    rows: dict[bytes, Any] = {}  # key bytes -> [offset, [count, [off, first], [off, last]], seq]
    dirty: dict[bytes, int] = {}  # changed since the last flush -> partition
    ends = [0] * p["partitions"]  # changelog records acknowledged per partition: the checkpoint
    written = 0
    positions: Any = None
    next_commit = time.monotonic() + 1.0

    def flush_state(commit: bool) -> None:
        nonlocal dirty, written
        batch = WriteBatch(raw_mode=True)
        put = batch.put
        for kb, part in dirty.items():
            vb = pack(rows[kb])
            try:
                produce(changelog, vb, kb, part)
            except BufferError:
                poll(0.05)
                produce(changelog, vb, kb, part)
            put(kb, vb)
            ends[part] += 1
        written += len(dirty)
        dirty = {}
        for part, end in enumerate(ends):
            put(b"\x00checkpoint:%d" % part, b"%d" % end)
        if commit:
            producer.flush()  # the changelog before the store: local state never ahead of it
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
            kb = m.key()
            offset = m.offset()
            row = rows.get(kb)
            if row is None:
                raw = get(kb)
                if raw is not None:
                    row = rows[kb] = unpack(raw, raw=False)
            if row is not None and offset <= row[0]:
                continue  # applied before (seq 0 of this offset): a replay
            x = loads(m.value()).get(FIELD)
            if row is None:
                rows[kb] = [offset, [1, [offset, x], [offset, x]], 0]
            else:
                row[0] = offset
                state = row[1]
                state[0] += 1
                if x is not None:
                    last = state[2]
                    last[0] = offset
                    last[1] = x
            dirty[kb] = m.partition()
        remaining -= len(msgs)
        positions = position(assignment())
        if per_batch:
            flush_state(False)
        if time.monotonic() >= next_commit:
            flush_state(True)
            next_commit = time.monotonic() + 1.0
    flush_state(True)
    window.stop()
    consumer.close()
    if failed:
        raise RuntimeError(f"{len(failed)} deliveries failed: {failed[0]}")
    total = sum(unpack(v, raw=False)[1][0] for k, v in db.items() if not k.startswith(b"\x00"))
    db.close()
    shutil.rmtree(state_dir, ignore_errors=True)
    out = window.result(p["records"])
    out.update(total_count=total, changelog_records=written)
    return out


@side_entry
def side_raw(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline: the state flushed once per commit interval, as streamlet does."""
    return _raw(p, per_batch=False)


@side_entry
def side_raw_batch(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline writing changelog records and a WriteBatch after every consumed batch."""
    return _raw(p, per_batch=True)


def stored_counts(state_dir: str, app_id: str, partitions: int, store: str) -> int:
    """The sum of the ``n`` column over every row of every partition's store (after the app stopped)."""
    from streamlet.state import StateDirectory
    from streamlet.topology.aggregation import stored_serde

    de = stored_serde().deserialize
    directory = StateDirectory(state_dir, app_id)
    total = 0
    for part in range(partitions):
        s = directory.open_store(part, store)
        try:
            total += sum(de(v)[1][0] for _, v in s.items())
        finally:
            s.close()
    return total


def topic_records(bootstrap: str, topic: str, partitions: int) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, i), timeout=10, cached=False)[1]
                   for i in range(partitions))
    finally:
        c.close()


def stateful_app(p: dict[str, Any], state_dir: str, repartition: bool = False, **settings: Any) -> Any:
    """The case's topology; ``repartition``: ``group_by`` the same key, through a repartition topic;
    ``settings``: more ``sl.App`` keyword arguments."""
    import streamlet as sl

    app = sl.App(p["group"], brokers=p["bootstrap"], state_dir=state_dir, config=p.get("config") or None,
                 **settings)
    stream = app.stream(p["input"])
    grouped = stream.group_by(lambda k, v: k) if repartition else stream.group_by_key()
    grouped.aggregate(n=sl.agg.count(), first=sl.agg.earliest_by_offset(FIELD),
                      last=sl.agg.latest_by_offset(FIELD), name=STORE)
    return app


def run_stateful(p: dict[str, Any], prefix: str, repartition: bool = False, window: Window | None = None,
                 **settings: Any) -> tuple[dict[str, Any], Any]:
    """:func:`stateful_app` on a fresh state directory (``prefix``), run until every input record is
    processed (with ``repartition`` the runner also counts the repartition records: twice as many) and a
    final commit made the state durable; ``total_count``: the stored counts, read back before the
    directory is removed. The measurement and the app."""
    state_dir = tempfile.mkdtemp(prefix=prefix)
    app = stateful_app(p, state_dir, repartition, **settings)
    records = p["records"]
    out = run_app_until(app, 2 * records if repartition else records, window or Window(), finish_in_runner=True)
    out["total_count"] = stored_counts(state_dir, p["group"], p["partitions"], STORE)
    shutil.rmtree(state_dir, ignore_errors=True)
    return out, app


@side_entry
def side_streamlet(p: dict[str, Any]) -> dict[str, Any]:
    """The same aggregation as a streamlet topology, run by ``app.run()``."""
    out, _ = run_stateful(p, "bench-stateful-")
    out["changelog_records"] = topic_records(p["bootstrap"], f"{p['group']}-{STORE}-changelog",
                                             p["partitions"])
    return out


side_streamlet_quarter = side_streamlet


@side_entry
def side_group_by(p: dict[str, Any]) -> dict[str, Any]:
    """The same aggregation after ``group_by`` (same key): each record also goes through
    ``<app>-stats-repartition``. The runner counts every record it consumes, so it is done at
    input + repartition records (one repartition record per input record); the rate is per input record."""
    out, _ = run_stateful(p, "bench-stateful-", repartition=True)
    consumed = out.pop("processed")
    hop = topic_records(p["bootstrap"], f"{p['group']}-{STORE}-repartition", p["partitions"])
    out.update(records=p["records"], consumed=consumed, repartition_records=hop, processed=consumed - hop)
    out["changelog_records"] = topic_records(p["bootstrap"], f"{p['group']}-{STORE}-changelog",
                                             p["partitions"])
    return out
