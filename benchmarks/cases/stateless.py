"""Case ``stateless``: filter + add a field + produce, JSON in and out (DESIGN §6, issue 3 item 8).

Data: ``records`` JSON objects of ~90 bytes over ``keys`` string keys in a
``partitions``-partition topic. The logic: keep records whose ``amount`` is
at least 250 (about 75% of them), set ``"flag": true``, write them to an
output topic with the input key. Three sides, each in a fresh process:

* ``raw-loop`` (the contract's baseline) — a hand-written confluent-kafka
  loop: ``consume(10000)``, orjson, the logic inline, ``produce(topic,
  value, key)`` with errors-only delivery reports, ``position()`` per
  batch, flush + synchronous commit about every second. Same client
  settings as streamlet (``streamlet.runtime.clients``), same
  garbage-collector tuning as the streamlet runner.
* ``raw-loop + streamlet semantics`` — the same loop doing what streamlet
  does per record on top of it: check that the key is valid UTF-8 (the
  string serde; the key is not decoded since no step reads it), call the
  logic as two functions, carry the input timestamp and headers to the
  output (Kafka Streams semantics). It splits the gap into what the
  semantics cost and what the engine costs.
* ``streamlet`` — ``app.stream(...).filter(...).map_values(...).to(...)`` run
  with ``app.run()``; a watcher thread learns from the runner's per-batch
  bookkeeping when every input record has been processed, waits for the
  producer's acknowledgements, and calls ``app.stop()``.

Every side is timed from partition assignment until every input record has
been processed and every output acknowledged (``producer.flush()``
returns); the final commit and leaving the group come after. The outputs of
every run are checked (count, nothing dropped by the broker).
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any, Iterator

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import (
    Window,
    kafka_streams_extra,
    kafka_streams_fields,
    raw_clients,
    run_app_until,
    run_one,
    with_kafka_streams,
)
from benchmarks.harness import (
    open_broker,
    check_fits,
    err_console,
    load,
    SideResult,
    side_entry,
    tune_gc,
)

BASELINE = "raw-loop"
INPUT = "bench-input"
THRESHOLD = 250
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY")
REGIONS = ("eu", "us", "ap")
#: what map_values adds to each value (bytes), for the output size estimate
ADDED_BYTES = len(b',"flag":true')


def make_records(records: int, keys: int, seed: int = 42) -> tuple[Iterator[tuple[bytes, bytes]], list[int]]:
    """``(key, value)`` byte pairs and a one-item list that ends up holding the expected output count."""
    import orjson

    expected = [0]

    def gen() -> Iterator[tuple[bytes, bytes]]:
        rnd = random.Random(seed)
        randrange, choice = rnd.randrange, rnd.choice
        dumps = orjson.dumps
        key_bytes = [f"user-{i:05d}".encode() for i in range(keys)]
        passed = 0
        for i in range(records):
            k = randrange(keys)
            amount = randrange(1000)
            passed += amount >= THRESHOLD
            value = {"order": i, "user": f"user-{k:05d}", "amount": amount, "currency": choice(CURRENCIES),
                     "ts": 1_700_000_000_000 + i, "region": choice(REGIONS)}
            yield key_bytes[k], dumps(value)
        expected[0] = passed

    return gen(), expected


def record_size(keys: int) -> float:
    """Bytes of a typical key + value."""
    import orjson

    value = {"order": 500_000, "user": "user-05000", "amount": 500, "currency": "EUR",
             "ts": 1_700_000_500_000, "region": "eu"}
    return len(orjson.dumps(value)) + len(b"user-05000")


#: side → label; ``raw`` is the contract's baseline
SIDES = {"raw": "raw-loop", "raw_semantics": "raw-loop + streamlet semantics", "streamlet": "streamlet"}


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    size = record_size(opts.keys)
    check_fits(opts.records, opts.partitions, size, "input", opts.broker)
    check_fits(opts.records, opts.partitions, size + ADDED_BYTES, "output", opts.broker)
    sides = with_kafka_streams(SIDES, opts.broker)
    topics = {INPUT: opts.partitions}
    for r in range(opts.repeat):
        for side in sides:
            topics[f"bench-out-{side}-{r}"] = opts.partitions
    runs: dict[str, list[SideResult]] = {side: [] for side in sides}
    with open_broker(topics, opts.broker) as broker:
        data, expected = make_records(opts.records, opts.keys)
        load_s = load(broker.bootstrap, INPUT, data, opts.records)
        broker.check_complete(INPUT, opts.records)
        err_console.print(f"loaded {opts.records:,} records in {load_s:.1f} s; "
                          f"{expected[0]:,} pass the filter")
        order = list(sides)
        for r in range(opts.repeat):
            k = r % len(order)
            for side in order[k:] + order[:k]:  # rotate: no side always runs first
                out = f"bench-out-{side}-{r}"
                params = {"bootstrap": broker.bootstrap, "input": INPUT, "output": out,
                          "records": opts.records, "group": f"bench-{side}-{r}", "threshold": THRESHOLD,
                          "expected": expected[0], "config": opts.client_config}
                profile = None
                if opts.profile_dir:
                    profile = f"{opts.profile_dir}/stateless-{side}-{r}.speedscope.json"
                res = run_one("stateless", side, params, profile)
                broker.check_complete(out, expected[0])
                runs[side].append(res)
                err_console.print(f"  run {r + 1}/{opts.repeat} {sides[side]:<30} {res.rps:>10,.0f} rec/s "
                                  f"({res.seconds:.2f} s, peak RSS {res.peak_rss_mb:.0f} MB)")
    best = {side: max(results, key=lambda s: s.rps) for side, results in runs.items()}
    raw, sem, sl = best["raw"], best["raw_semantics"], best["streamlet"]
    details = [
        ("records in / out", f"{opts.records:,} / {expected[0]:,}"),
        ("partitions / keys", f"{opts.partitions} / {opts.keys:,}"),
        ("input load", f"{load_s:.1f} s"),
        ("raw-loop + streamlet semantics", f"{sem.rps:,.0f} rec/s ({sem.rps / raw.rps:.2f}× raw-loop)"),
        ("streamlet / same-semantics loop", f"{sl.rps / sem.rps:.2f}×"),
    ]
    for side, label in sides.items():
        cpu = best[side].extra.get("main_thread_cpu_seconds")
        if cpu:
            details.append((f"main-thread CPU, {label}", f"{cpu * 1e6 / opts.records:.2f} µs/record"))
    details.append(("raw-loop peak RSS", f"{raw.peak_rss_mb:.0f} MB"))
    if "kafka_streams" in best:
        details.append(("Kafka Streams peak RSS (JVM)", f"{best['kafka_streams'].peak_rss_mb:.0f} MB"))
    median = {side: statistics.median(s.rps for s in results) for side, results in runs.items()}
    if opts.repeat > 1:
        details.append(("median of runs: streamlet / raw-loop",
                        f"{median['streamlet']:,.0f} / {median['raw']:,.0f} rec/s "
                        f"({median['streamlet'] / median['raw']:.2f}×)"))
        for side, label in sides.items():
            details.append((f"all runs, {label}", ", ".join(f"{s.rps:,.0f}" for s in runs[side])))
    return CaseResult(
        case="stateless", records=opts.records, streamlet_rps=sl.rps, baseline=BASELINE,
        baseline_rps=raw.rps, peak_rss_mb=sl.peak_rss_mb, seconds=sl.seconds, details=details,
        extra={"partitions": opts.partitions, "outputs": expected[0], "baseline_seconds": round(raw.seconds, 3),
               "same_semantics_rps": round(sem.rps, 1), "repeat": opts.repeat,
               "median_ratio": round(median["streamlet"] / median["raw"], 3),
               "total_seconds": round(time.perf_counter() - t_start, 1), **kafka_streams_extra(runs)},
        **kafka_streams_fields(runs),
    )


# -- the sides (each runs in its own process through benchmarks/side.py) ----------------
def _plain(msgs: list[Any], out: str, threshold: int, loads: Any, dumps: Any, produce: Any,
           poll: Any) -> int:
    """The raw loop's body: parse, filter, add a field, encode, produce. Returns error events seen."""
    errors = 0
    for m in msgs:
        if m.error() is not None:
            errors += 1
            continue
        v = loads(m.value())
        if v["amount"] >= threshold:
            v["flag"] = True
            try:
                produce(out, dumps(v), m.key())
            except BufferError:
                poll(0.05)
                produce(out, dumps(v), m.key())
    return errors


def _with_semantics(msgs: list[Any], out: str, threshold: int, loads: Any, dumps: Any, produce: Any,
                    poll: Any) -> int:
    """The raw loop doing what streamlet does per record on top: check that the key decodes (it
    is not decoded: no step reads it), call the logic as two functions, carry the input
    timestamp and headers to the output."""
    keep = lambda k, v: v["amount"] >= threshold  # noqa: E731

    def add_flag(v: dict[str, Any]) -> dict[str, Any]:
        v["flag"] = True
        return v

    errors = 0
    for m in msgs:
        if m.error() is not None:
            errors += 1
            continue
        kb = m.key()
        if kb is not None and not kb.isascii():
            kb.decode()
        v = loads(m.value())
        if keep(kb, v):
            v = add_flag(v)
            ts = m.timestamp()[1]
            try:
                produce(out, dumps(v), kb, -1, None, None, ts if ts > 0 else 0, m.headers())
            except BufferError:
                poll(0.05)
                produce(out, dumps(v), kb, -1, None, None, ts if ts > 0 else 0, m.headers())
    return errors


def _raw(p: dict[str, Any], body: Any) -> dict[str, Any]:
    import orjson

    window = Window()
    consumer, producer, failed = raw_clients(p, on_assign=lambda c, parts: window.start())
    tune_gc()
    out, threshold, remaining = p["output"], p["threshold"], p["records"]
    loads, dumps = orjson.loads, orjson.dumps
    consume, produce, poll = consumer.consume, producer.produce, producer.poll
    position, assignment = consumer.position, consumer.assignment
    next_commit = time.monotonic() + 1.0
    positions: Any = None
    while remaining > 0:
        msgs = consume(10_000, 0.2)
        if not msgs:
            continue
        remaining -= len(msgs) - body(msgs, out, threshold, loads, dumps, produce, poll)
        positions = position(assignment())
        if time.monotonic() >= next_commit:
            producer.flush()
            consumer.commit(offsets=positions, asynchronous=False)
            next_commit = time.monotonic() + 1.0
    producer.flush()  # every output acknowledged: the end of the measurement
    window.stop()
    consumer.commit(offsets=positions, asynchronous=False)
    consumer.close()
    if failed:
        raise RuntimeError(f"{len(failed)} deliveries failed: {failed[0]}")
    return window.result(p["records"])


@side_entry
def side_raw(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline: what a careful engineer writes by hand with confluent-kafka."""
    return _raw(p, _plain)


@side_entry
def side_raw_semantics(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline loop plus streamlet's per-record semantics (see :func:`_with_semantics`)."""
    return _raw(p, _with_semantics)


@side_entry
def side_streamlet(p: dict[str, Any]) -> dict[str, Any]:
    """The same logic as a streamlet topology, run by ``app.run()``."""
    import streamlet as sl

    threshold = p["threshold"]

    def add_flag(v: dict[str, Any]) -> dict[str, Any]:
        # the freshly parsed value of a stream that does not branch: setting a field in place is safe
        v["flag"] = True
        return v

    app = sl.App(p["group"], brokers=p["bootstrap"], config=p.get("config") or None)
    (app.stream(p["input"])
        .filter(lambda k, v: v["amount"] >= threshold)
        .map_values(add_flag)
        .to(p["output"]))

    # the end: every output acknowledged (the producer's flush)
    return run_app_until(app, p["records"], Window(), finish_in_runner=False)
