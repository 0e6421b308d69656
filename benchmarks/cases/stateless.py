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

import time
from typing import Any, Iterator

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import Window, run_app_until, with_kafka_streams
from benchmarks.cases._filter import (INPUT, RAW_LOOP, filter_result, measure_filter, orders, output_topics, plain,
    raw_loop)
from benchmarks.harness import open_broker, check_fits, err_console, load, side_entry

BASELINE = RAW_LOOP
#: what map_values adds to each value (bytes), for the output size estimate
ADDED_BYTES = len(b',"flag":true')


def make_records(records: int, keys: int, seed: int = 42) -> tuple[Iterator[tuple[bytes, bytes]], list[int]]:
    """``(key, value)`` byte pairs and a one-item list that ends up holding the expected output count."""
    import orjson

    expected = [0]
    dumps = orjson.dumps
    return ((k, dumps(v)) for k, v in orders(records, keys, expected, seed)), expected


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
    with open_broker(output_topics(sides, opts.repeat, opts.partitions), opts.broker) as broker:
        data, expected = make_records(opts.records, opts.keys)
        load_s = load(broker.bootstrap, INPUT, data, opts.records)
        broker.check_complete(INPUT, opts.records)
        err_console.print(f"loaded {opts.records:,} records in {load_s:.1f} s; "
                          f"{expected[0]:,} pass the filter")
        runs = measure_filter("stateless", opts, sides, broker, expected[0])
    raw, sem, sl = (max(runs[side], key=lambda s: s.rps) for side in ("raw", "raw_semantics", "streamlet"))
    rows = [("raw-loop + streamlet semantics", f"{sem.rps:,.0f} rec/s ({sem.rps / raw.rps:.2f}× raw-loop)"),
            ("streamlet / same-semantics loop", f"{sl.rps / sem.rps:.2f}×")]
    return filter_result("stateless", opts, t_start, sides, runs, expected[0], load_s, rows,
                         {"same_semantics_rps": round(sem.rps, 1)})


# -- the sides (each runs in its own process through benchmarks/side.py) ----------------
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

    return raw_loop(p, body, orjson.loads, orjson.dumps)


@side_entry
def side_raw(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline: what a careful engineer writes by hand with confluent-kafka."""
    return _raw(p, plain)


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
