"""Helpers shared by the cases (``stateless``, ``stateful``, ``join``, ``restore``, ``restart``).

Not a case itself (no entry in :data:`benchmarks.cases.CASES`): the clients
of a raw loop with streamlet's settings, the measured window (wall clock and
main-thread CPU), the run of a streamlet app that ends
the measurement from inside the runner's own thread, a best-of-runs summary.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any, Callable

from benchmarks.harness import SideResult, err_console, run_side


def _thread_cpu(tid: int) -> float | None:
    """CPU seconds (user + system) of thread ``tid`` of this process (Linux), else None."""
    import os

    try:
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Window:
    """Wall clock and main-thread CPU between ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        self.tid = threading.get_native_id()  # create it in the thread that runs the loop
        self.t0 = self.t1 = 0.0
        self.cpu0: float | None = None
        self.cpu1: float | None = None

    def start(self) -> None:
        if not self.t0:
            self.t0, self.cpu0 = time.perf_counter(), _thread_cpu(self.tid)

    def stop(self) -> None:
        self.t1, self.cpu1 = time.perf_counter(), _thread_cpu(self.tid)

    def result(self, records: int) -> dict[str, Any]:
        out: dict[str, Any] = {"records": records, "seconds": self.t1 - self.t0}
        if self.cpu0 is not None and self.cpu1 is not None:
            out["main_thread_cpu_seconds"] = round(self.cpu1 - self.cpu0, 3)
        return out




def raw_clients(p: dict[str, Any], on_assign: Callable[..., None] | None = None,
                subscribe: bool = True) -> tuple[Any, Any, list[Any]]:
    """A consumer (subscribed to ``p["input"]``) and a producer with streamlet's client settings;
    the list collects failed deliveries (errors-only delivery reports)."""
    from confluent_kafka import Consumer, Producer

    from streamlet.runtime.clients import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS, _split

    failed: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:  # called for failed deliveries only
        failed.append(err)

    c_extra, p_extra = _split(p.get("config") or {})
    consumer = Consumer({**CONSUMER_DEFAULTS, **c_extra, "bootstrap.servers": p["bootstrap"],
                         "group.id": p["group"]})
    producer = Producer({**PRODUCER_DEFAULTS, **p_extra, "bootstrap.servers": p["bootstrap"],
                         "on_delivery": on_delivery})
    if subscribe:
        topics = p["inputs"] if "inputs" in p else [p["input"]]
        if on_assign is not None:
            consumer.subscribe(topics, on_assign=on_assign)
        else:
            consumer.subscribe(topics)
    return consumer, producer, failed


def first_assignment(runner: Any) -> Any:
    """The event set at the runner's first assignment: ``assigned`` (``ready`` meant that before
    readiness waited for restores), so that compare.py can run these cases on older versions."""
    return getattr(runner, "assigned", None) or runner.ready


def run_app_until(app: Any, n: int, window: Window, finish_in_runner: bool) -> dict[str, Any]:
    """``app.run()`` until ``n`` input records are processed; the measured window of ``window``.

    The window starts at partition assignment. With ``finish_in_runner`` the end
    is a full commit made in the runner's own thread right after the batch
    that reached ``n`` (changelog records produced and acknowledged, stores
    written with their checkpoints, offsets committed): the state is durable
    when the clock stops. Otherwise the end is the producer's flush (outputs
    acknowledged), as in ``stateless``.
    """
    done = threading.Event()
    stopped: list[float] = []
    app_processed: list[int] = []

    def watch() -> None:
        while app._runner is None:
            time.sleep(0.001)
        runner = app._runner
        first_assignment(runner).wait()
        window.start()
        committer = runner.committer
        track = committer.track_positions

        def track_and_check(positions: Any) -> None:
            track(positions)
            if runner.processed >= n and not done.is_set():
                app_processed.append(runner.processed)
                if finish_in_runner:
                    committer.commit()  # the runner's thread: the caches are its own
                    window.stop()
                    app.stop()
                    stopped.append(time.perf_counter())
                done.set()

        committer.track_positions = track_and_check
        if finish_in_runner:
            return
        if runner.processed >= n:  # all processed before the hook was in place
            app_processed.append(runner.processed)
            done.set()
        done.wait()
        runner.producer.flush()
        window.stop()
        app.stop()
        stopped.append(time.perf_counter())

    threading.Thread(target=watch, name="bench-watch", daemon=True).start()
    app.run()
    if not stopped:
        raise RuntimeError("app.run() returned before every record was processed")
    out = window.result(n)
    out["processed"] = app_processed[0] if app_processed else n
    out["stop_seconds"] = round(time.perf_counter() - stopped[0], 3)
    return out


#: the side name of the Kafka Streams application (``--broker kafka``; see ``benchmarks/kstreams.py``)
KAFKA_STREAMS = "kafka_streams"


def with_kafka_streams(sides: dict[str, str], broker: str) -> dict[str, str]:
    """``sides`` plus the Kafka Streams side on a real broker (its Java build checked first)."""
    if broker != "kafka":
        return dict(sides)
    from benchmarks.kstreams import check_tools

    check_tools()
    return {**sides, KAFKA_STREAMS: "Kafka Streams"}


def run_one(case: str, side: str, params: dict[str, Any], profile: str | None = None) -> SideResult:
    """One run of one side: a Python side in a fresh interpreter, or the Kafka Streams application."""
    if side == KAFKA_STREAMS:
        from benchmarks.kstreams import run_kstreams

        return run_kstreams(case, params)
    return run_side(case, side, params, profile=profile)


def kafka_streams_fields(runs: dict[str, list[SideResult]]) -> dict[str, Any]:
    """``CaseResult`` keyword arguments for the Kafka Streams side's best run (none without it)."""
    if KAFKA_STREAMS not in runs:
        return {}
    ks = max(runs[KAFKA_STREAMS], key=lambda s: s.rps)
    return {"kafka_streams_rps": ks.rps}


def kafka_streams_extra(runs: dict[str, list[SideResult]]) -> dict[str, Any]:
    """Extra JSON keys of the Kafka Streams side's best run: its seconds and the JVM's peak RSS."""
    if KAFKA_STREAMS not in runs:
        return {}
    ks = max(runs[KAFKA_STREAMS], key=lambda s: s.rps)
    out = {"kafka_streams_seconds": round(ks.seconds, 3), "kafka_streams_peak_rss_mb": round(ks.peak_rss_mb, 1)}
    half = ks.extra.get("half_seconds")
    if half and 0 < half < ks.seconds:  # records/s of the second half: the JIT warmed up
        out["kafka_streams_second_half_rps"] = round(ks.records / 2 / (ks.seconds - half), 1)
    return out


def measure(case: str, sides: dict[str, str], repeat: int, make_params: Callable[[str, int], dict[str, Any]],
            profile_dir: str | None, check: Callable[[str, int, SideResult], None] | None = None,
            unit: str = "records/s", width: int = 34) -> dict[str, list[SideResult]]:
    """Each side ``repeat`` times in rotating order; ``check(side, run, result)`` after each run;
    a progress line per run (side labels padded to ``width``)."""
    runs: dict[str, list[SideResult]] = {side: [] for side in sides}
    order = list(sides)
    for r in range(repeat):
        k = r % len(order)
        for side in order[k:] + order[:k]:  # rotate: no side always runs first
            profile = f"{profile_dir}/{case}-{side}-{r}.speedscope.json" if profile_dir else None
            res = run_one(case, side, make_params(side, r), profile)
            if check is not None:
                check(side, r, res)
            runs[side].append(res)
            err_console.print(f"  run {r + 1}/{repeat} {sides[side]:<{width}} {res.rps:>10,.0f} {unit} "
                              f"({res.seconds:.2f} s, peak RSS {res.peak_rss_mb:.0f} MB)")
    return runs


def best(runs: dict[str, list[SideResult]]) -> dict[str, SideResult]:
    return {side: max(results, key=lambda s: s.rps) for side, results in runs.items()}


def summary_rows(runs: dict[str, list[SideResult]], sides: dict[str, str], records: int,
                 streamlet: str, baseline: str) -> tuple[list[tuple[str, str]], float]:
    """Detail rows (CPU per record, all runs, medians) and the median ratio."""
    b = best(runs)
    rows: list[tuple[str, str]] = []
    for side, label in sides.items():
        cpu = b[side].extra.get("main_thread_cpu_seconds")
        if cpu:
            rows.append((f"main-thread CPU, {label}", f"{cpu * 1e6 / records:.2f} µs/record"))
    for side, label in sides.items():
        if side != streamlet:
            rows.append((f"{label} peak RSS", f"{b[side].peak_rss_mb:.0f} MB"))
    median = {side: statistics.median(s.rps for s in results) for side, results in runs.items()}
    median_ratio = median[streamlet] / median[baseline] if median[baseline] else 0.0
    if len(runs[streamlet]) > 1:
        rows.append((f"median of runs: {sides[streamlet]} / {sides[baseline]}",
                     f"{median[streamlet]:,.0f} / {median[baseline]:,.0f} rec/s ({median_ratio:.2f}×)"))
        for side, label in sides.items():
            rows.append((f"all runs, {label}", ", ".join(f"{s.rps:,.0f}" for s in runs[side])))
    return rows, median_ratio


def read_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 120.0) -> list[tuple[Any, Any]]:
    """Every ``(key, value)`` of ``topic`` from offset 0 to its end (after a side ran: nothing comes later)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-read-back", "enable.auto.commit": False,
                  "enable.partition.eof": False})
    try:
        ends = {i: c.get_watermark_offsets(TopicPartition(topic, i), timeout=10, cached=False)[1]
                for i in range(partitions)}
        left = {i for i, end in ends.items() if end > 0}
        c.assign([TopicPartition(topic, i, 0) for i in left])
        out: list[tuple[Any, Any]] = []
        deadline = time.monotonic() + timeout
        while left:
            if time.monotonic() > deadline:
                raise RuntimeError(f"reading {topic} back: partitions {sorted(left)} not read to their end")
            for m in c.consume(10_000, 0.2):
                if m.error() is not None:
                    continue
                out.append((m.key(), m.value()))
                if m.offset() + 1 >= ends[m.partition()]:
                    left.discard(m.partition())
        return out
    finally:
        c.close()
