"""Worker processes and live traffic for the ``failover``, ``rolling-restart`` and ``scaling`` cases.

Not a case itself. A :class:`Worker` is ``streamlet run SCRIPT`` in its own
process (own state directory, log file, optional HTTP side); a
:class:`SteadyLoad` produces numbered records at a fixed rate, record ``seq``
to input partition ``seq % partitions`` with key ``live-<seq>``; an
:class:`OutputWatcher` consumes the output topic and notes when each
``live-<seq>`` key was first seen. The counting app writes one output per
input record with the input's key, so "seen" means "processed".
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from datetime import datetime
from typing import Any, Callable

from benchmarks.harness import ROOT, BenchError, _child_env

#: the counting topology every worker runs (APP is filled in per run)
SCRIPT = """
import streamlet as sl

app = sl.App("{app}")
app.stream("{input}").group_by_key().count(name="counts").to_stream().to("{output}")
"""
STORE = "counts"
OWNERSHIP = re.compile(r"^(\S+ \S+) INFO \S+: (assigned|revoked|lost) (.*)$", re.M)
RESTORED = re.compile(r"^(\S+ \S+) INFO \S+: store counts partition (\d+) ready: (\d+) changelog records restored",
                      re.M)
CAUGHT_UP = re.compile(r"standby task \d+_(\d+): (\S+) \[\d+\] caught up at offset (\d+)")
PARTITION = re.compile(r"\[(\d+)\]")
LIVE_PREFIX = b"live-"


def log_time(stamp: str) -> float:
    """Epoch seconds of a log line's ``asctime`` (``2026-12-05 02:25:00,123``, local time)."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_script(directory: str, app: str, input_topic: str, output: str) -> str:
    path = os.path.join(directory, f"{app}.py")
    with open(path, "w") as f:
        f.write(textwrap.dedent(SCRIPT.format(app=app, input=input_topic, output=output)))
    return path


class Worker:
    """``streamlet run SCRIPT`` with its own state dir and log; :meth:`restart` keeps both (and its port)."""

    def __init__(self, directory: str, script: str, bootstrap: str, name: str, env: dict[str, str],
                 http: bool = False) -> None:
        self.name, self.script = name, script
        self.log_path = os.path.join(directory, f"{name}.log")
        self.port = free_port() if http else None
        self.env = {**_child_env(), "STREAMLET_BROKERS": bootstrap,
                    "STREAMLET_STATE_DIR": os.path.join(directory, f"state-{name}"), **env}
        if self.port:
            self.env["STREAMLET_APPLICATION_SERVER"] = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss_mb = 0.0
        self.start()

    def start(self) -> None:
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "streamlet", "run", self.script], stdout=log,
                                     stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def note_rss(self) -> None:
        """Remember the process's peak RSS so far (VmHWM; Linux)."""
        if not self.alive():
            return
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:  # type: ignore[union-attr]
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)
        except OSError:
            pass

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and wait for the exit (SIGKILL after ``timeout``); the exit code."""
        assert self.proc is not None
        self.note_rss()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def text(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def tail(self, chars: int = 2500) -> str:
        return f"--- {self.name} log ---\n{self.text()[-chars:]}"

    def owned(self, topic: str) -> set[int]:
        """Partitions of ``topic`` this worker owns now, replayed from its assigned/revoked/lost lines."""
        owned: set[int] = set()
        for _, event, parts in OWNERSHIP.findall(self.text()):
            names = {int(m) for p in parts.split(",") if p.strip().startswith(topic + "[")
                     for m in PARTITION.findall(p)}
            owned = owned | names if event == "assigned" else owned - names
        return owned

    def assigned_at(self, topic: str, since: float) -> dict[int, float]:
        """Partition of ``topic`` → time of the first ``assigned`` line naming it after ``since``."""
        out: dict[int, float] = {}
        for stamp, event, parts in OWNERSHIP.findall(self.text()):
            t = log_time(stamp)
            if event != "assigned" or t < since:
                continue
            for p in parts.split(","):
                if p.strip().startswith(topic + "["):
                    out.setdefault(int(PARTITION.findall(p)[0]), t)
        return out

    def restored(self, since: float) -> dict[int, int]:
        """Store partition → changelog records restored by restores logged after ``since``."""
        out: dict[int, int] = {}
        for stamp, p, n in RESTORED.findall(self.text()):
            if log_time(stamp) >= since:
                out[int(p)] = out.get(int(p), 0) + int(n)
        return out

    def caught_up(self, changelog: str) -> dict[int, int]:
        """Partition → the last offset this worker's standby of it logged as caught up at."""
        return {int(p): int(o) for p, topic, o in CAUGHT_UP.findall(self.text()) if topic == changelog}

    def ready(self) -> bool:
        """``GET /ready`` answers 200 (every assigned task running)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False


def wait_until(condition: Callable[[], Any], deadline_s: float, what: str, workers: list[Worker],
               interval: float = 0.1) -> Any:
    """Poll ``condition`` until truthy; fail (with the workers' log tails) after ``deadline_s`` or when one
    of ``workers`` exits."""
    deadline = time.monotonic() + deadline_s
    while True:
        for w in workers:
            if not w.alive():
                raise BenchError(f"worker {w.name} exited while waiting for {what}\n{w.tail()}")
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {deadline_s:.0f} s waiting for {what}\n"
                             + "\n".join(w.tail() for w in workers))
        time.sleep(interval)


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets", "enable.auto.commit": False})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in range(partitions)}
    finally:
        c.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: max(tp.offset, 0) for tp in got}
    finally:
        c.close()


def wait_caught_up(bootstrap: str, app: str, topic: str, partitions: int, deadline_s: float,
                   workers: list[Worker]) -> None:
    """Until the group's committed offsets on ``topic`` are its end offsets."""
    ends = end_offsets(bootstrap, topic, partitions)
    wait_until(lambda: committed(bootstrap, app, topic, partitions) == ends, deadline_s,
               f"{app} to commit {topic} up to its end {sum(ends.values()):,}", workers, interval=1.0)


class SteadyLoad(threading.Thread):
    """Produces ``live-<seq>`` records at ``rate`` per second, record ``seq`` to partition ``seq % partitions``."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate: int) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "acks": "all"})
        self.topic, self.partitions, self.rate = topic, partitions, rate
        self.seq = 0  # the next record's number (records 0..seq-1 were produced)
        self.failed = 0
        self._halt = threading.Event()

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed += 1

    def run(self) -> None:
        t0 = time.monotonic()
        produce, value = self.producer.produce, b'{"live": true}'
        while not self._halt.is_set():
            due = int((time.monotonic() - t0) * self.rate)
            while self.seq < due:
                seq = self.seq
                produce(self.topic, value, LIVE_PREFIX + str(seq).encode(), partition=seq % self.partitions,
                        on_delivery=self._delivered)
                self.seq = seq + 1
            self.producer.poll(0.005)
        self.producer.flush(30)

    def stop(self) -> int:
        """Stop producing; the number of records produced."""
        self._halt.set()
        self.join(60)
        if self.failed:
            raise BenchError(f"{self.failed} live records were not delivered")
        return self.seq


class OutputWatcher(threading.Thread):
    """Consumes ``topic`` from its current end; ``seen[seq]`` = when ``live-<seq>`` was first received."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watcher",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 10})
        ends = end_offsets(bootstrap, topic, partitions)
        self.consumer.assign([TopicPartition(topic, p, o) for p, o in ends.items()])
        self.seen: dict[int, float] = {}
        self.duplicates = 0
        self._halt = threading.Event()

    def run(self) -> None:
        seen, n = self.seen, len(LIVE_PREFIX)
        while not self._halt.is_set():
            msgs = self.consumer.consume(1000, 0.05)
            now = time.time()
            for m in msgs:
                key = m.key()
                if m.error() is None and key is not None and key.startswith(LIVE_PREFIX):
                    seq = int(key[n:])
                    if seq in seen:
                        self.duplicates += 1
                    else:
                        seen[seq] = now
        self.consumer.close()

    def wait_all(self, count: int, deadline_s: float) -> int:
        """Wait until records ``0..count-1`` were all seen (or the deadline); how many were not."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline and len(self.seen) < count:
            time.sleep(0.2)
        return sum(1 for s in range(count) if s not in self.seen)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def first_after(self, seq: int, partition: int, partitions: int) -> float | None:
        """When the first record at or after ``seq`` of input ``partition`` was seen (None: not yet)."""
        times = [t for s, t in list(self.seen.items()) if s >= seq and s % partitions == partition]
        return min(times) if times else None

    def longest_gap(self, partitions: int, start: float, end: float) -> tuple[float, int, float]:
        """The longest time between consecutive first sightings on one input partition within
        [start, end]: (seconds, partition, when the gap began)."""
        gaps = self.gaps(partitions, start, end)
        return max(gaps.values(), default=(0.0, -1, 0.0))

    def gaps(self, partitions: int, start: float, end: float) -> dict[int, tuple[float, int, float]]:
        """Per input partition, its longest gap within [start, end]: (seconds, partition, when it began)."""
        per: dict[int, list[float]] = {}
        for s, t in list(self.seen.items()):
            if start <= t <= end:
                per.setdefault(s % partitions, []).append(t)
        out: dict[int, tuple[float, int, float]] = {}
        for p, times in per.items():
            times.sort()
            out[p] = max(((b - a, p, a) for a, b in zip(times, times[1:])), default=(0.0, p, start))
        return out


    def pauses(self, partitions: int, start: float, end: float, at_least: float) -> list[tuple[int, float, float]]:
        """Every gap of ``at_least`` seconds or more between consecutive first sightings on one input
        partition within [start, end]: (partition, when it began, seconds)."""
        per: dict[int, list[float]] = {}
        for s, t in list(self.seen.items()):
            if start <= t <= end:
                per.setdefault(s % partitions, []).append(t)
        out = []
        for p, times in per.items():
            times.sort()
            out += [(p, a, b - a) for a, b in zip(times, times[1:]) if b - a >= at_least]
        return out


def wait_standbys_caught_up(bootstrap: str, changelog: str, partitions: int, workers: list[Worker],
                            deadline_s: float) -> None:
    """Until, for every partition of ``changelog``, some worker's standby logged "caught up" at its end."""
    ends = end_offsets(bootstrap, changelog, partitions)

    def caught() -> bool:
        best: dict[int, int] = {}
        for w in workers:
            for p, o in w.caught_up(changelog).items():
                best[p] = max(best.get(p, 0), o)
        return all(best.get(p, -1) >= ends[p] for p in range(partitions))

    wait_until(caught, deadline_s, "every standby to catch up", workers, interval=0.5)


def wait_processing(watcher: OutputWatcher, moved: list[int], seq: int, partitions: int, deadline_s: float,
                    what: str, workers: list[Worker]) -> dict[int, float]:
    """Until, for each input partition of ``moved``, a record numbered ``seq`` or later was seen in the
    output; partition → when (the first such sighting)."""
    def resumed() -> dict[int, float] | None:
        got = {p: watcher.first_after(seq, p, partitions) for p in moved}
        return got if all(t is not None for t in got.values()) else None  # type: ignore[return-value]

    return wait_until(resumed, deadline_s, what, workers, interval=0.05)


def takeover(workers: list[Worker], topic: str, since: float) -> tuple[dict[int, float], dict[int, int]]:
    """Over ``workers``, after ``since``: partition of ``topic`` → its first ``assigned`` line, and
    store partition → changelog records restored."""
    assigned: dict[int, float] = {}
    restored: dict[int, int] = {}
    for w in workers:
        for p, t in w.assigned_at(topic, since).items():
            assigned[p] = min(t, assigned.get(p, t))
        for p, n in w.restored(since).items():
            restored[p] = restored.get(p, 0) + n
    return assigned, restored


def stop_all(workers: list[Worker]) -> None:
    for w in workers:
        if w.alive():
            w.stop(signal.SIGTERM, 60)
