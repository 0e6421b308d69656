"""Case ``stateless``: filter + add a field + produce, JSON in and out (DESIGN §6, issue 3 item 8).

Data: ``records`` JSON objects of ~90 bytes over ``keys`` string keys in a
``partitions``-partition topic. The logic, on both sides: keep records whose
``amount`` is at least 250 (about 75% of them), set ``"flag": true``, write
them to an output topic with the input key.

* ``raw-loop`` — a hand-written confluent-kafka loop: ``consume(10000)``,
  orjson, the logic inline, ``produce`` with errors-only delivery reports,
  ``position()`` per batch, flush + synchronous commit about every second.
  Same client settings as streamlet (``streamlet.runtime.clients``) and the
  same garbage-collector tuning as the streamlet runner.
* ``streamlet`` — ``app.stream(...).filter(...).map_values(...).to(...)`` run
  with ``app.run()``; a watcher thread sees every input record processed
  (``runner.processed``), waits for the producer's acknowledgements, and
  calls ``app.stop()``.

Both are timed from partition assignment until every input record has been
processed and every output acknowledged (``producer.flush()`` returns); the
final commit and leaving the group come after. Each side runs in a fresh
process.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Iterator

from benchmarks.cases import CaseResult, Options
from benchmarks.harness import (
    BrokerProcess,
    check_fits,
    err_console,
    load,
    run_side,
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


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    size = record_size(opts.keys)
    check_fits(opts.records, opts.partitions, size, "input")
    check_fits(opts.records, opts.partitions, size + ADDED_BYTES, "output")
    topics = {INPUT: opts.partitions}
    for r in range(opts.repeat):
        topics[f"bench-out-raw-{r}"] = opts.partitions
        topics[f"bench-out-streamlet-{r}"] = opts.partitions
    raw_runs, sl_runs = [], []
    with BrokerProcess(topics) as broker:
        data, expected = make_records(opts.records, opts.keys)
        load_s = load(broker.bootstrap, INPUT, data, opts.records)
        broker.check_complete(INPUT, opts.records)
        err_console.print(f"loaded {opts.records:,} records in {load_s:.1f} s; "
                          f"{expected[0]:,} pass the filter")
        for r in range(opts.repeat):
            order = ("raw", "streamlet") if r % 2 == 0 else ("streamlet", "raw")
            for side in order:
                out = f"bench-out-{side}-{r}"
                params = {"bootstrap": broker.bootstrap, "input": INPUT, "output": out,
                          "records": opts.records, "group": f"bench-{side}-{r}", "threshold": THRESHOLD,
                          "config": opts.client_config}
                profile = None
                if opts.profile_dir:
                    profile = f"{opts.profile_dir}/stateless-{side}-{r}.speedscope.json"
                res = run_side("stateless", side, params, profile=profile)
                broker.check_complete(out, expected[0])
                (raw_runs if side == "raw" else sl_runs).append(res)
                err_console.print(f"  run {r + 1}/{opts.repeat} {side:<9} {res.rps:>12,.0f} records/s "
                                  f"({res.seconds:.2f} s, peak RSS {res.peak_rss_mb:.0f} MB)")
    raw = max(raw_runs, key=lambda s: s.rps)
    sl = max(sl_runs, key=lambda s: s.rps)
    details = [
        ("records in / out", f"{opts.records:,} / {expected[0]:,}"),
        ("partitions / keys", f"{opts.partitions} / {opts.keys:,}"),
        ("input load", f"{load_s:.1f} s"),
        ("streamlet seconds (best)", f"{sl.seconds:.2f}"),
        ("raw-loop seconds (best)", f"{raw.seconds:.2f}"),
        ("raw-loop peak RSS", f"{raw.peak_rss_mb:.0f} MB"),
    ]
    if opts.repeat > 1:
        details.append(("all streamlet runs (rec/s)", ", ".join(f"{s.rps:,.0f}" for s in sl_runs)))
        details.append(("all raw-loop runs (rec/s)", ", ".join(f"{s.rps:,.0f}" for s in raw_runs)))
    return CaseResult(
        case="stateless", records=opts.records, streamlet_rps=sl.rps, baseline=BASELINE,
        baseline_rps=raw.rps, peak_rss_mb=sl.peak_rss_mb, seconds=sl.seconds, details=details,
        extra={"partitions": opts.partitions, "outputs": expected[0], "baseline_seconds": round(raw.seconds, 3),
               "total_seconds": round(time.perf_counter() - t_start, 1)},
    )


# -- the sides (each runs in its own process through benchmarks/side.py) ----------------
@side_entry
def side_raw(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline: what a careful engineer writes by hand with confluent-kafka."""
    import orjson
    from confluent_kafka import Consumer, Producer

    from streamlet.runtime.clients import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS, _split

    errors: list[Any] = []
    c_extra, p_extra = _split(p.get("config") or {})

    def on_delivery(err: Any, msg: Any) -> None:  # called for failed deliveries only
        errors.append(err)

    consumer = Consumer({**CONSUMER_DEFAULTS, **c_extra, "bootstrap.servers": p["bootstrap"],
                         "group.id": p["group"]})
    producer = Producer({**PRODUCER_DEFAULTS, **p_extra, "bootstrap.servers": p["bootstrap"],
                         "on_delivery": on_delivery})
    started: list[float] = []

    def on_assign(c: Any, partitions: Any) -> None:
        if not started:
            started.append(time.perf_counter())

    consumer.subscribe([p["input"]], on_assign=on_assign)
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
        for m in msgs:
            if m.error() is not None:
                remaining += 1
                continue
            v = loads(m.value())
            if v["amount"] >= threshold:
                v["flag"] = True
                try:
                    produce(out, dumps(v), m.key())
                except BufferError:
                    poll(0.05)
                    produce(out, dumps(v), m.key())
        remaining -= len(msgs)
        positions = position(assignment())
        if time.monotonic() >= next_commit:
            producer.flush()
            consumer.commit(offsets=positions, asynchronous=False)
            next_commit = time.monotonic() + 1.0
    producer.flush()  # every output acknowledged: the end of the measurement
    end = time.perf_counter()
    consumer.commit(offsets=positions, asynchronous=False)
    consumer.close()
    if errors:
        raise RuntimeError(f"{len(errors)} deliveries failed: {errors[0]}")
    return {"records": p["records"], "seconds": end - started[0],
            "stop_seconds": round(time.perf_counter() - end, 3)}


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

    n = p["records"]
    started: list[float] = []
    ended: list[float] = []

    def watch() -> None:
        while app._runner is None:
            time.sleep(0.001)
        runner = app._runner
        runner.ready.wait()
        started.append(time.perf_counter())
        while runner.processed < n:
            time.sleep(0.002)
        # every input processed; once the producer has no message left in flight, every
        # output is acknowledged: the end of the measurement (run() then stops, commits, leaves)
        runner.producer.flush()
        ended.append(time.perf_counter())
        app.stop()

    threading.Thread(target=watch, name="bench-watch", daemon=True).start()
    app.run()
    if not ended:
        raise RuntimeError("app.run() returned before every record was processed")
    return {"records": n, "seconds": ended[0] - started[0],
            "stop_seconds": round(time.perf_counter() - ended[0], 3)}
