"""What every benchmark case shares: the broker process, loading data, measuring a side.

A case (``benchmarks/cases/<name>.py``) loads its data through a
:class:`BrokerProcess` and measures each side with :func:`run_side`, which
runs one side in a fresh Python process (``benchmarks/side.py``) so that
each side has its own interpreter, garbage collector and peak RSS.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "benchmarks")

#: The embedded broker keeps at most this much per partition and silently drops older data
MOCK_PARTITION_BYTES = 5 * 1024 * 1024
MOCK_PARTITION_MESSAGE_SETS = 100_000
#: per-record overhead of the Kafka v2 record format, for the size estimate (bytes)
RECORD_OVERHEAD = 12

#: Loader settings: big batches, no per-record callback
LOADER_PRODUCER = {
    "linger.ms": 50,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 2_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "partitioner": "murmur2_random",
    "delivery.report.only.error": True,
}

err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 110)


class BenchError(RuntimeError):
    """A benchmark could not run or produced a wrong result."""


# -- the broker ---------------------------------------------------------------
class BrokerProcess:
    """``streamlet broker`` in its own process; topics are created at start. With ``schema_registry``
    it also serves the embedded Schema Registry (``--schema-registry``) at :attr:`registry_url`."""

    def __init__(self, topics: dict[str, int], start_timeout: float = 30.0,
                 schema_registry: bool = False) -> None:
        self.topics = dict(topics)
        args = [sys.executable, "-m", "streamlet", "broker"]
        for name, n in self.topics.items():
            args += ["--topic", f"{name}:{n}"]
        if schema_registry:
            args.append("--schema-registry")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, cwd=ROOT, env=_child_env())
        self.bootstrap = self._read_line("bootstrap", start_timeout)
        # printed with the bootstrap line (maybe already in the pipe's buffer: no select)
        self.registry_url = self._read_line("schema-registry", None) if schema_registry else None

    def _read_line(self, what: str, timeout: float | None) -> str:
        """The value of the ``what: VALUE`` line `streamlet broker` prints next (waiting ``timeout``)."""
        assert self.proc.stdout is not None
        ready = True if timeout is None else select.select([self.proc.stdout], [], [], timeout)[0]
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith(f"{what}: "):
            self.stop()
            raise BenchError(f"`streamlet broker` did not start (expected {what!r}, got {line!r})")
        return line.split(":", 1)[1].strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> "BrokerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection ------------------------------------------------------------
    def watermarks(self, topic: str) -> list[tuple[int, int]]:
        """``(low, high)`` per partition of ``topic``."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "bench-watermarks",
                      "enable.auto.commit": False})
        try:
            return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                    for p in range(self.topics[topic])]
        finally:
            c.close()

    def check_complete(self, topic: str, expected: int) -> int:
        """Fail unless ``topic`` holds exactly ``expected`` records, none dropped by the broker."""
        marks = self.watermarks(topic)
        dropped = [p for p, (low, _) in enumerate(marks) if low != 0]
        if dropped:
            raise BenchError(
                f"the embedded broker dropped old data of {topic} partitions {dropped} (it keeps "
                f"{MOCK_PARTITION_BYTES >> 20} MiB / {MOCK_PARTITION_MESSAGE_SETS} message sets per "
                "partition): use more partitions or fewer records"
            )
        total = sum(high for _, high in marks)
        if total != expected:
            raise BenchError(f"{topic} holds {total} records, expected {expected}")
        return total


#: a topic of the real broker that no side reads: the broker's one-time work is done there
WARM_UP_TOPIC = "bench-warm-up"


class KafkaProcess(BrokerProcess):
    """A real Apache Kafka broker (:class:`streamlet.testing.kafka.KafkaBroker`, a JVM) with the topics
    created through the Admin API; the same inspection as the embedded broker."""

    def __init__(self, topics: dict[str, int], schema_registry: bool = False) -> None:
        from streamlet.broker.admin import KafkaTopicAdmin
        from streamlet.errors import KafkaBrokerError
        from streamlet.testing.kafka import KafkaBroker

        self.topics = dict(topics)
        self.registry: Any = None
        self.registry_url: str | None = None
        if schema_registry:  # the embedded registry, served from a thread of this process
            from streamlet.broker.registry import RegistryServer

            self.registry = RegistryServer().start()
            self.registry_url = self.registry.url
        self.kafka = KafkaBroker(heap="1g")
        err_console.print("starting a real Kafka broker (streamlet.testing.kafka.KafkaBroker)")
        try:
            self.kafka.start()
            self.bootstrap = self.kafka.bootstrap_servers
            KafkaTopicAdmin(self.bootstrap, {}).create({**self.topics, WARM_UP_TOPIC: 1}, None)
            self._warm_up()
        except KafkaBrokerError as exc:
            self.stop()
            raise BenchError(f"the Kafka broker did not start: {exc}") from None
        except BaseException:
            self.stop()
            raise

    def _warm_up(self) -> None:
        """What a fresh broker does once, done before any side is measured: create
        ``__consumer_offsets`` (at a group's first request), allocate producer ids (an idempotent
        producer's first InitProducerId), serve a first fetch."""
        from confluent_kafka import Consumer, Producer, TopicPartition

        topic, bootstrap = WARM_UP_TOPIC, self.bootstrap
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "log_level": 3})
        p.produce(topic, b"warm-up")
        p.flush(30)
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-warm-up", "enable.auto.commit": False,
                      "auto.offset.reset": "earliest"})
        try:
            c.assign([TopicPartition(topic, 0, 0)])
            c.consume(1, 10)
            c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        finally:
            c.close()

    def stop(self) -> None:
        self.kafka.stop()
        if self.registry is not None:
            self.registry.stop()


def open_broker(topics: dict[str, int], kind: str = "embedded", schema_registry: bool = False) -> BrokerProcess:
    """The broker of one case run: ``embedded`` (``streamlet broker``) or ``kafka`` (a real one); with
    ``schema_registry`` the embedded Schema Registry too (its URL: ``registry_url``)."""
    if kind == "kafka":
        return KafkaProcess(topics, schema_registry=schema_registry)
    return BrokerProcess(topics, schema_registry=schema_registry)


def check_fits(records: int, partitions: int, record_bytes: float, what: str,
               broker: str = "embedded") -> None:
    """Refuse data sets the embedded broker would silently truncate (10% margin for key skew)."""
    if broker != "embedded":
        return  # a real broker keeps everything
    per_partition = records / partitions * (record_bytes + RECORD_OVERHEAD) * 1.10
    if per_partition > MOCK_PARTITION_BYTES * 0.95:
        raise BenchError(
            f"{what}: ~{per_partition / 2**20:.1f} MiB per partition does not fit the embedded "
            f"broker's {MOCK_PARTITION_BYTES >> 20} MiB per partition; use --partitions "
            f"{int(partitions * per_partition / (MOCK_PARTITION_BYTES * 0.8)) + 1} or fewer records"
        )


# -- loading --------------------------------------------------------------------
def load(bootstrap: str, topic: str, records: Iterator[tuple[bytes, bytes]], count: int,
         label: str = "loading", timestamped: bool = False) -> float:
    """Produce ``count`` (key, value) pairs to ``topic`` with a progress bar; returns seconds.

    ``timestamped``: the items are (key, value, timestamp in ms) triples, the records' Kafka timestamps.
    """
    from confluent_kafka import Producer

    producer = Producer({**LOADER_PRODUCER, "bootstrap.servers": bootstrap})
    produce, poll = producer.produce, producer.poll
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err_console, transient=False) as progress:
        task = progress.add_task(f"{label} {topic}", total=count)
        done = 0
        for item in records:
            key, value = item[0], item[1]
            ts = item[2] if timestamped else 0  # type: ignore[misc]
            while True:
                try:
                    produce(topic, value, key, timestamp=ts)
                    break
                except BufferError:
                    poll(0.05)
            done += 1
            if done % 20_000 == 0:
                poll(0)
                progress.update(task, completed=done)
        while producer.flush(1.0) > 0:
            pass
        progress.update(task, completed=done)
    return time.perf_counter() - t0


# -- measuring one side in its own process ----------------------------------------
@dataclass
class SideResult:
    name: str
    records: int
    seconds: float
    peak_rss_mb: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


#: the folders of the streamlet packages imported by the sides run since the last clear() (``side.py``)
STREAMLET_PATHS: set[str] = set()


def run_side(case: str, side: str, params: dict[str, Any], timeout: float = 600.0,
             profile: str | None = None) -> SideResult:
    """Run ``side`` of ``case`` in a fresh interpreter; its last stdout line is its result.

    ``profile`` (a path) runs the side under py-spy and writes a speedscope profile there.
    """
    args = [sys.executable, os.path.join(BENCH_DIR, "side.py"), case, side, json.dumps(params)]
    if profile:
        args = ["py-spy", "record", "--format", os.environ.get("PYSPY_FORMAT", "speedscope"), "--rate", "500",
                *os.environ.get("PYSPY_FLAGS", "").split(), "-o", profile, "--"] + args
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=_child_env())
    # the side's JSON line is its last; py-spy may print its own lines after it
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(f"side {case}/{side} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(lines[-1])
    if out.get("streamlet_path"):
        STREAMLET_PATHS.add(out["streamlet_path"])
    return SideResult(side, out.pop("records"), out.pop("seconds"), out.pop("peak_rss_mb"), out)


def side_entry(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Marks a case function as a side; it returns at least records and seconds."""
    fn.is_side = True  # type: ignore[attr-defined]
    return fn


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def tune_gc() -> None:
    """What ``Runner.run`` does at start: everything so far is permanent, collect rarely."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for key in [k for k in env if k.startswith("STREAMLET_")]:
        del env[key]  # a benchmark sets its own settings
    return env
