"""What the filter cases (``stateless``, ``avro``) share: the data, the raw loop, the run, the result.

Not a case itself. Both cases keep the records whose ``amount`` is at least
:data:`THRESHOLD`, set ``flag`` and write them to an output topic with the
input key; they differ in the value format (JSON, Avro) and in their sides.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any, Callable, Iterator

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import Window, kafka_streams_extra, kafka_streams_fields, measure, raw_clients
from benchmarks.harness import SideResult, tune_gc

#: the baseline of both cases (their ``BASELINE``)
RAW_LOOP = "raw-loop"
INPUT = "bench-input"
THRESHOLD = 250
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY")
REGIONS = ("eu", "us", "ap")

#: ``body(msgs, out, threshold, loads, dumps, produce, poll) -> error events seen`` of :func:`raw_loop`
Body = Callable[[list[Any], str, int, Any, Any, Any, Any], int]


def orders(records: int, keys: int, expected: list[int], seed: int = 42) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """``(key bytes, order dict)`` of the data set; at the end ``expected[0]`` holds how many pass the filter."""
    rnd = random.Random(seed)
    randrange, choice = rnd.randrange, rnd.choice
    key_bytes = [f"user-{i:05d}".encode() for i in range(keys)]
    passed = 0
    for i in range(records):
        k = randrange(keys)
        amount = randrange(1000)
        passed += amount >= THRESHOLD
        yield key_bytes[k], {"order": i, "user": f"user-{k:05d}", "amount": amount,
                             "currency": choice(CURRENCIES), "ts": 1_700_000_000_000 + i,
                             "region": choice(REGIONS)}
    expected[0] = passed


def output_topics(sides: dict[str, str], repeat: int, partitions: int) -> dict[str, int]:
    """The input topic and one output topic per side and run: ``bench-out-<side>-<run>``."""
    topics = {INPUT: partitions}
    for r in range(repeat):
        for side in sides:
            topics[f"bench-out-{side}-{r}"] = partitions
    return topics


def measure_filter(case: str, opts: Options, sides: dict[str, str], broker: Any, expected: int,
                   check: Callable[[str, int], None] | None = None, width: int = 30,
                   **params: Any) -> dict[str, list[SideResult]]:
    """Each side ``opts.repeat`` times (rotating order) on its own output topic, whose record count is
    checked; ``check(output topic, run)`` after that; ``params``: more side parameters."""

    def make_params(side: str, r: int) -> dict[str, Any]:
        return {"bootstrap": broker.bootstrap, "input": INPUT, "output": f"bench-out-{side}-{r}", **params,
                "records": opts.records, "group": f"bench-{side}-{r}", "threshold": THRESHOLD,
                "expected": expected, "config": opts.client_config}

    def after(side: str, r: int, res: SideResult) -> None:
        out = f"bench-out-{side}-{r}"
        broker.check_complete(out, expected)
        if check is not None:
            check(out, r)

    return measure(case, sides, opts.repeat, make_params, opts.profile_dir, after, unit="rec/s", width=width)


def filter_result(case: str, opts: Options, t_start: float, sides: dict[str, str], runs: dict[str, list[SideResult]],
                  outputs: int, load_s: float, rows: list[tuple[str, str]], extra: dict[str, Any]) -> CaseResult:
    """The case's result: details (counts, input load, ``rows``, CPU per record, the raw loop's and Kafka
    Streams' peak RSS, the medians), ``streamlet`` against ``raw``; ``extra`` JSON keys after
    ``baseline_seconds``."""
    best = {side: max(results, key=lambda s: s.rps) for side, results in runs.items()}
    raw, sl = best["raw"], best["streamlet"]
    details = [
        ("records in / out", f"{opts.records:,} / {outputs:,}"),
        ("partitions / keys", f"{opts.partitions} / {opts.keys:,}"),
        ("input load", f"{load_s:.1f} s"),
        *rows,
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
        case=case, records=opts.records, streamlet_rps=sl.rps, baseline=RAW_LOOP,
        baseline_rps=raw.rps, peak_rss_mb=sl.peak_rss_mb, seconds=sl.seconds, details=details,
        extra={"partitions": opts.partitions, "outputs": outputs, "baseline_seconds": round(raw.seconds, 3),
               **extra, "repeat": opts.repeat, "median_ratio": round(median["streamlet"] / median["raw"], 3),
               "total_seconds": round(time.perf_counter() - t_start, 1), **kafka_streams_extra(runs)},
        **kafka_streams_fields(runs),
    )


# -- the raw loop (in a side's process) ---------------------------------------------------
def plain(msgs: list[Any], out: str, threshold: int, loads: Any, dumps: Any, produce: Any, poll: Any) -> int:
    """The raw loop's body: decode, filter, add a field, encode, produce. Returns error events seen."""
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


def raw_loop(p: dict[str, Any], body: Body, loads: Any, dumps: Any) -> dict[str, Any]:
    """A hand-written confluent-kafka loop: ``consume(10000)``, ``body`` per batch with ``loads(bytes)`` and
    ``dumps(value)``, ``position()`` per batch, flush + synchronous commit about every second; timed from
    partition assignment until every output is acknowledged."""
    window = Window()
    consumer, producer, failed = raw_clients(p, on_assign=lambda c, parts: window.start())
    tune_gc()
    out, threshold, remaining = p["output"], p["threshold"], p["records"]
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
