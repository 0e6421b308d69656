"""Case ``window``: a tumbling 60 s count per key, emitted once per window when it closes (DESIGN §6).

Data: the ``stateless`` record shape (JSON objects of ~90 bytes over ``keys``
string keys, ``partitions`` partitions, partitioned by key) whose ``ts``
field, the event time, advances evenly from a minute boundary a day before
the run over :data:`SPAN_MS` (20 minutes) across the whole input, whatever
its size (recent: a real broker's 7-day retention would delete outputs
stamped years ago):
each partition's records span those 20 minutes in order, so each partition
closes 19 windows of every key it holds (the 20th stays open: nothing comes
after it). No record is late. The work::

    app.stream(input, timestamp="ts").group_by_key() \\
       .windowed_by(sl.Tumbling(timedelta(seconds=60), grace=0)).emit_final() \\
       .count(name="counts").to_stream().to(out)

Output: one record per closed (key, window): key = the key's bytes + the
window start as 8 bytes big-endian (Kafka Streams' ``TimeWindowedSerializer``
layout), value = the count (JSON), timestamp = the window's largest record
time.

Sides, each in a fresh process, state in a fresh temporary directory:

* ``raw-loop`` (the contract's baseline): ``consume(10000)``, ``orjson.loads``
  for ``ts``, the open windows in a dict per partition (window start → key
  bytes → ``[offset, count, max ts]``: the read cache, bounded by open
  windows; a record at or below a row's offset is a replay and skipped), a
  dirty set; per partition its stream time, and when it passes the end of
  the oldest open window, every closed window is produced in start-then-key
  order and dropped from the dict (and from the dirty set: a window emitted
  before the next flush needs no changelog record, as in streamlet, whose
  window expiry drops it from the cache). Every ~1 s (streamlet's
  ``commit_interval_ms``): one changelog record per changed window row
  (msgpack) and per partition whose emitted-up-to mark moved, ``flush()``, one
  rocksdict ``WriteBatch`` of the changed rows, the emitted windows' range
  deleted, per-partition checkpoints, synchronous commit. The same RocksDB
  options as streamlet.
* ``raw-loop, flush per batch``: the same, writing the changelog records and
  the WriteBatch after every consumed batch (DESIGN §6's literal wording): a
  reference only.
* ``streamlet`` under ``app.run()``.
* ``kafka_streams`` (``--broker kafka``): the same topology in Kafka Streams
  (``TimeWindows.ofSizeWithNoGrace``, ``EmitStrategy.onWindowClose()``, the
  event time read from ``ts`` by a ``TimestampExtractor``). Kafka Streams runs
  its emit-final pass at most once per second of wall-clock time per task
  (the internal ``__emit.interval.ms.kstreams.windowed.aggregation__``,
  1000 ms), and only when a record arrives: the windows that close within
  the last second before the input ends are not emitted (no record comes to
  trigger the next pass; a run shorter than a second emits none). So its
  output is checked as a subset (every window it emits is one the input
  closes, with the same count) and the number it emitted is reported. With
  the interval at 0 (a pass at every record, as the other sides do) it emits
  exactly the expected windows, but at ~170-330 records/s (5,000 records, 4
  partitions), so the benchmark keeps its default (``params["emit_interval_ms"]``
  passes another value). Even so it is slow here (~800-1,200 records/s):
  ``jstack`` samples of its stream thread all show the emit-final pass
  (``fetchAndEmit`` → ``TimeOrderedCachingWindowStore``'s cache iterator →
  ``getNextSegmentIterator`` → ``ThreadCache.range``), which steps through the
  window store's segments one at a time, and a task's first pass fetches
  from window start 0 (nothing emitted yet): tens of millions of 60 s
  segments up to today's event time, a few seconds per task whatever the
  input size.

Timing: from partition assignment until every record is processed and a
final commit has made outputs and state durable (outputs and changelog
acknowledged, stores written, offsets committed).

Checks: each side's output topic read back must hold exactly the windows
the input closes — the same (key, window start) → count as computed here
from the generated data — and no window twice.
"""

from __future__ import annotations

import random
import shutil
import struct
import tempfile
import time
from typing import Any, Iterator

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import KAFKA_STREAMS, Window, best, measure, raw_clients, read_topic
from benchmarks.cases._common import kafka_streams_extra, kafka_streams_fields, run_app_until, summary_rows
from benchmarks.cases._common import with_kafka_streams
from benchmarks.cases._filter import CURRENCIES, REGIONS
from benchmarks.cases.stateless import record_size
from benchmarks.harness import BenchError, check_fits, err_console, load, open_broker, side_entry, tune_gc

BASELINE = "raw-loop"
INPUT = "bench-input"
STORE = "counts"
WINDOW_MS = 60_000
#: event time covered by the whole input (20 windows)
SPAN_MS = 20 * WINDOW_MS
SIDES = {"raw": "raw-loop", "raw_batch": "raw-loop, flush per batch", "streamlet": "streamlet"}
_START = struct.Struct(">q")


def first_timestamp() -> int:
    """A minute boundary a day ago: the event time of the first record."""
    return (int(time.time() * 1000) - 86_400_000) // WINDOW_MS * WINDOW_MS


def make_records(records: int, keys: int, partitions: int, t0: int,
                 seed: int = 42) -> tuple[Iterator[tuple[bytes, bytes]], dict[bytes, int]]:
    """``(key, value)`` byte pairs, and a dict that ends up holding every window the input closes
    (windowed key bytes → count), filled while the pairs are generated."""
    import orjson

    from streamlet.partitioner import murmur2_partition

    closed: dict[bytes, int] = {}

    def gen() -> Iterator[tuple[bytes, bytes]]:
        rnd = random.Random(seed)
        randrange, choice, dumps = rnd.randrange, rnd.choice, orjson.dumps
        key_bytes = [f"user-{i:05d}".encode() for i in range(keys)]
        part_of = [murmur2_partition(kb, partitions) for kb in key_bytes]
        counts: dict[tuple[int, int], int] = {}
        stream_time = [-1] * partitions
        for i in range(records):
            k = randrange(keys)
            ts = t0 + i * SPAN_MS // records
            value = {"order": i, "user": f"user-{k:05d}", "amount": randrange(1000),
                     "currency": choice(CURRENCIES), "ts": ts, "region": choice(REGIONS)}
            start = ts - ts % WINDOW_MS
            counts[(start, k)] = counts.get((start, k), 0) + 1
            p = part_of[k]
            if ts > stream_time[p]:
                stream_time[p] = ts
            yield key_bytes[k], dumps(value)
        for (start, k), n in counts.items():
            if start + WINDOW_MS <= stream_time[part_of[k]]:  # grace 0: closed at end <= stream time
                closed[key_bytes[k] + _START.pack(start)] = n

    return gen(), closed


def output_counts(rows: list[tuple[Any, Any]], side: str) -> dict[bytes, int]:
    """Windowed key bytes → count from an output topic; a window emitted twice is an error."""
    import orjson

    out: dict[bytes, int] = {}
    for kb, vb in rows:
        n = _START.unpack(vb)[0] if side == KAFKA_STREAMS else orjson.loads(vb)  # Kafka Streams: a Long
        if kb in out:
            raise BenchError(f"{side}: window {kb!r} emitted twice ({out[kb]}, then {n})")
        out[kb] = n
    return out


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    check_fits(opts.records, opts.partitions, record_size(opts.keys), "input", opts.broker)
    sides = with_kafka_streams(SIDES, opts.broker)
    topics = {INPUT: opts.partitions}
    for r in range(opts.repeat):
        for side in sides:
            topics[f"bench-out-{side}-{r}"] = opts.partitions
            if side.startswith("raw"):
                topics[f"bench-{side}-{r}-changelog"] = opts.partitions
    with open_broker(topics, opts.broker) as broker:
        data, closed = make_records(opts.records, opts.keys, opts.partitions, first_timestamp())
        load_s = load(broker.bootstrap, INPUT, data, opts.records)
        broker.check_complete(INPUT, opts.records)
        err_console.print(f"loaded {opts.records:,} records in {load_s:.1f} s; they close {len(closed):,} "
                          f"windows of {WINDOW_MS // 1000} s")

        def params(side: str, r: int) -> dict[str, Any]:
            return {"bootstrap": broker.bootstrap, "input": INPUT, "output": f"bench-out-{side}-{r}",
                    "records": opts.records, "expected": len(closed), "group": f"bench-{side}-{r}",
                    "changelog": f"bench-{side}-{r}-changelog", "partitions": opts.partitions,
                    "window_ms": WINDOW_MS, "config": opts.client_config}

        def check(side: str, r: int, res: Any) -> None:
            topic = f"bench-out-{side}-{r}"
            rows = read_topic(broker.bootstrap, topic, opts.partitions)
            broker.check_complete(topic, len(rows))  # nothing dropped by the embedded broker
            got = output_counts(rows, side)
            res.extra["windows"] = len(got)
            if side == KAFKA_STREAMS and got.items() <= closed.items():
                return  # its throttled emit pass leaves the windows closed in its last second (docstring)
            if got != closed:
                missing = len(closed.keys() - got.keys())
                extra = len(got.keys() - closed.keys())
                wrong = sum(1 for kb in closed.keys() & got.keys() if got[kb] != closed[kb])
                raise BenchError(f"{side}: {len(got):,} windows emitted, expected {len(closed):,}: {missing:,} "
                                 f"missing, {extra:,} unexpected, {wrong:,} with another count")

        runs = measure("window", sides, opts.repeat, params, opts.profile_dir, check)
    b = best(runs)
    raw, per_batch, sl = b["raw"], b["raw_batch"], b["streamlet"]
    rows, median_ratio = summary_rows(runs, sides, opts.records, "streamlet", "raw")
    details = [
        ("records / partitions / keys", f"{opts.records:,} / {opts.partitions} / {opts.keys:,}"),
        ("event time / window", f"{SPAN_MS // 60_000} min / {WINDOW_MS // 1000} s tumbling, grace 0, emit final"),
        ("input load", f"{load_s:.1f} s"),
        ("windows emitted (each side, checked)", f"{len(closed):,}"),
        *([("windows emitted by Kafka Streams (each one checked)",
            f"{b[KAFKA_STREAMS].extra.get('windows', 0):,} (the rest closed within its last emit interval)")]
          if KAFKA_STREAMS in b else []),
        ("changelog records: streamlet / raw-loop / flush per batch",
         f"{sl.extra.get('changelog_records', 0):,} / {raw.extra.get('changelog_records', 0):,} / "
         f"{per_batch.extra.get('changelog_records', 0):,}"),
        ("raw-loop, flush per batch", f"{per_batch.rps:,.0f} rec/s (streamlet: {sl.rps / per_batch.rps:.2f}× it)"),
        *rows,
    ]
    return CaseResult(
        case="window", records=opts.records, streamlet_rps=sl.rps, baseline=BASELINE,
        baseline_rps=raw.rps, peak_rss_mb=sl.peak_rss_mb, seconds=sl.seconds, details=details,
        extra={"partitions": opts.partitions, "windows": len(closed), "outputs": len(closed),
               "baseline_seconds": round(raw.seconds, 3), "flush_per_batch_rps": round(per_batch.rps, 1),
               "repeat": opts.repeat, "median_ratio": round(median_ratio, 3), "target_ratio": 0.6,
               "total_seconds": round(time.perf_counter() - t_start, 1), **kafka_streams_extra(runs),
               **({"kafka_streams_windows": b[KAFKA_STREAMS].extra.get("windows", 0)} if KAFKA_STREAMS in b else {})},
        **kafka_streams_fields(runs),
    )


# -- the sides --------------------------------------------------------------------------
def _raw(p: dict[str, Any], per_batch: bool) -> dict[str, Any]:
    import msgpack
    import orjson
    from rocksdict import Rdict, WriteBatch

    from streamlet.state.rocksdb import _options

    state_dir = tempfile.mkdtemp(prefix="bench-window-")
    window = Window()
    consumer, producer, failed = raw_clients(p, on_assign=lambda c, parts: window.start())
    db = Rdict(state_dir + "/db", _options())
    tune_gc()
    loads, pack = orjson.loads, msgpack.Packer(use_bin_type=True).pack
    spack = _START.pack
    consume, produce, poll = consumer.consume, producer.produce, producer.poll
    position, assignment = consumer.position, consumer.assignment
    out, changelog, remaining, size = p["output"], p["changelog"], p["records"], p["window_ms"]
    parts = p["partitions"]
    # per partition: window start -> key bytes -> [offset, count, max ts]; only open windows
    wins: list[dict[int, dict[bytes, list[int]]]] = [{} for _ in range(parts)]
    stream_time = [-1] * parts
    next_close = [0] * parts  # the end of the oldest open window (0: none yet)
    emitted = [-1] * parts  # windows ending at or before it were emitted
    emitted_dirty: set[int] = set()
    dirty: dict[bytes, tuple[int, list[int]]] = {}  # store key (partition, start, key) -> (partition, row)
    ends = [0] * parts  # changelog records acknowledged per partition: the checkpoint
    written = emitted_windows = 0
    positions: Any = None
    next_commit = time.monotonic() + 1.0

    def emit(part: int, close: int) -> None:
        """Every window of ``part`` ending at or before ``close``, in start-then-key order."""
        nonlocal emitted_windows
        open_ = wins[part]
        for start in sorted(s for s in open_ if s + size <= close):
            suffix = spack(start)
            prefix = part.to_bytes(2, "big") + suffix
            rows = open_.pop(start)
            for kb in sorted(rows):
                row = rows[kb]
                dirty.pop(prefix + kb, None)  # emitted and deleted: its row needs no changelog record
                try:
                    produce(out, b"%d" % row[1], kb + suffix, timestamp=row[2])
                except BufferError:
                    poll(0.05)
                    produce(out, b"%d" % row[1], kb + suffix, timestamp=row[2])
            emitted_windows += len(rows)
        emitted[part] = close
        emitted_dirty.add(part)
        next_close[part] = min(open_) + size if open_ else 0

    def flush_state(commit: bool) -> None:
        nonlocal dirty, written
        batch = WriteBatch(raw_mode=True)
        put = batch.put

        def log(kb: bytes, vb: bytes, part: int) -> None:
            try:
                produce(changelog, vb, kb, part)
            except BufferError:
                poll(0.05)
                produce(changelog, vb, kb, part)
            ends[part] += 1

        for sk, (part, row) in dirty.items():
            vb = pack(row)
            log(sk[2:], vb, part)
            put(sk, vb)
        written += len(dirty)
        dirty = {}
        for part in emitted_dirty:
            vb = b"%d" % emitted[part]
            log(b"\xff\xffemitted", vb, part)
            put(b"\xff\xffemitted:%d" % part, vb)
            # the emitted windows are never read again: one range deletion per partition
            batch.delete_range(part.to_bytes(2, "big") + spack(0),
                               part.to_bytes(2, "big") + spack(emitted[part] - size + 1))
            written += 1
        emitted_dirty.clear()
        for part, end in enumerate(ends):
            put(b"\xff\xffcheckpoint:%d" % part, b"%d" % end)
        if commit:
            producer.flush()  # outputs and changelog before the store: local state never ahead of them
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
            part, offset = m.partition(), m.offset()
            ts = loads(m.value())["ts"]
            st = stream_time[part]
            if ts > st:
                st = stream_time[part] = ts
            start = ts - ts % size
            if start + size <= st:
                continue  # late (grace 0): its window is closed
            kb = m.key()
            rows = wins[part].get(start)
            if rows is None:
                rows = wins[part][start] = {}
                if not next_close[part] or start + size < next_close[part]:
                    next_close[part] = start + size
            row = rows.get(kb)
            if row is None:
                row = rows[kb] = [offset, 1, ts]
            elif offset <= row[0]:
                continue  # applied before: a replay
            else:
                row[0] = offset
                row[1] += 1
                if ts > row[2]:
                    row[2] = ts
            dirty[part.to_bytes(2, "big") + spack(start) + kb] = (part, row)
            if next_close[part] and st >= next_close[part]:
                emit(part, st)
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
    db.close()
    shutil.rmtree(state_dir, ignore_errors=True)
    if failed:
        raise RuntimeError(f"{len(failed)} deliveries failed: {failed[0]}")
    res = window.result(p["records"])
    res.update(changelog_records=written, emitted=emitted_windows)
    return res


@side_entry
def side_raw(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline: the state flushed once per commit interval, as streamlet does."""
    return _raw(p, per_batch=False)


@side_entry
def side_raw_batch(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline writing changelog records and a WriteBatch after every consumed batch."""
    return _raw(p, per_batch=True)


@side_entry
def side_streamlet(p: dict[str, Any]) -> dict[str, Any]:
    """The same windowed count as a streamlet topology, run by ``app.run()``."""
    from datetime import timedelta

    import streamlet as sl
    from benchmarks.cases.stateful import topic_records

    state_dir = tempfile.mkdtemp(prefix="bench-window-")
    app = sl.App(p["group"], brokers=p["bootstrap"], state_dir=state_dir, config=p.get("config") or None)
    (app.stream(p["input"], timestamp="ts").group_by_key()
        .windowed_by(sl.Tumbling(timedelta(milliseconds=p["window_ms"]), grace=0)).emit_final()
        .count(name=STORE).to_stream().to(p["output"]))
    out = run_app_until(app, p["records"], Window(), finish_in_runner=True)
    out["changelog_records"] = topic_records(p["bootstrap"], f"{p['group']}-{STORE}-changelog", p["partitions"])
    shutil.rmtree(state_dir, ignore_errors=True)
    return out
