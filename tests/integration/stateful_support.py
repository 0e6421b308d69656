"""Processes for the stateful integration tests: a `streamlet broker`, workers, a reader."""

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


class BrokerProcess:
    """`streamlet broker` in its own process; stopped by :meth:`stop`."""

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

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class Worker:
    """`streamlet run SCRIPT` with its own state dir and log file."""

    def __init__(self, tmp: Path, script: Path, bootstrap: str, state_dir: Path, name: str) -> None:
        self.log_path = tmp / f"{name}.log"
        self.log = open(self.log_path, "a")
        env = {**os.environ, "STREAMLET_BROKERS": bootstrap, "STREAMLET_STATE_DIR": str(state_dir),
               "STREAMLET_COMMIT_INTERVAL_MS": "200",
               "STREAMLET_CONFIG": "session.timeout.ms=6000,heartbeat.interval.ms=500"}
        self.proc = subprocess.Popen([sys.executable, "-m", "streamlet", "run", str(script)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
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
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"})
    for key, value in records:
        while True:
            try:
                p.produce(topic, orjson.dumps(value), key.encode())
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(30) == 0


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
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
