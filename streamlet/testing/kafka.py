"""A real Apache Kafka broker for tests: :class:`KafkaBroker` (KRaft, one node, in a JVM).

    from streamlet.testing.kafka import KafkaBroker

    with KafkaBroker() as kafka:                       # seconds: start one per test session
        kafka.create_topic("orders", 4)
        app = sl.App("orders-app", brokers=kafka.bootstrap_servers)
        ...
        kafka.reset()                                  # every topic and group gone, for the next test

It needs Java 17+ and, the first time, Maven (it builds the broker's jars from Maven Central:
see :mod:`streamlet.testing.kafka_jars`). The broker listens on free loopback ports, keeps its
data in a temporary directory that :meth:`KafkaBroker.stop` removes, and logs to a file
(``log_path``), not to the console. Its settings suit tests (``BROKER_DEFAULTS``): internal topics
with one replica and few partitions, no initial rebalance delay, short group sessions allowed,
record timestamps far from the broker's clock accepted, a log cleaner that compacts within a
second, and no topic auto-creation (topics are made on purpose, as in production).
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from streamlet.errors import KafkaBrokerError
from streamlet.testing.kafka_jars import build_file, find_java, jars_dir, kafka_version
from streamlet.testing.maven_app import stop_process

__all__ = ["KafkaBroker", "BROKER_DEFAULTS"]

#: server.properties of every test broker (``config=`` adds to or overrides them)
BROKER_DEFAULTS: dict[str, str] = {
    # topics are created on purpose (Admin API), never by a metadata request or a typo
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    "default.replication.factor": "1",
    # one node: the broker's own topics have one replica, and few partitions to start fast
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "share.coordinator.state.topic.num.partitions": "1",
    # groups: the first member does not wait 3 s for others; tests may use short sessions
    # (classic protocol and KIP-848 group.protocol=consumer alike)
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.session.timeout.ms": "10000",
    "group.consumer.min.heartbeat.interval.ms": "100",
    "group.consumer.heartbeat.interval.ms": "1000",
    # KIP-1030: records stamped far from the broker's clock (tests use timestamp=1000) are kept
    "log.message.timestamp.before.max.ms": "9223372036854775807",
    "log.message.timestamp.after.max.ms": "9223372036854775807",
    # compaction within a second on topics with segment.ms / min.cleanable.dirty.ratio set low
    "log.cleaner.backoff.ms": "100",
    "log.cleaner.dedupe.buffer.size": "2097152",
    # the files of deleted topics go soon (a long session creates and deletes many)
    "file.delete.delay.ms": "1000",
}


def free_port() -> int:
    """A loopback port free at the moment of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_id() -> str:
    """A KRaft cluster id (a base64 UUID) that cannot be taken for a command-line option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def log_tail(path: Path, chars: int = 4000) -> str:
    """The last ``chars`` characters of a process's log file ("" if it cannot be read)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class KafkaBroker:
    """One Apache Kafka node (broker and KRaft controller) on loopback; a context manager.

    ``config``: more server.properties; ``extra_listeners``: name → (port it listens on, the
    ``host:port`` it advertises), e.g. to run clients through a proxy; ``jars``: the jar folder
    (default: ``STREAMLET_KAFKA_JARS``, else the per-user cache, built with Maven if missing);
    ``log_path``: where the broker logs (default: in its data directory, removed at stop).
    """

    def __init__(self, *, config: dict[str, Any] | None = None,
                 extra_listeners: dict[str, tuple[int, str]] | None = None,
                 jars: str | os.PathLike[str] | None = None, heap: str = "512m",
                 log_path: str | os.PathLike[str] | None = None, start_timeout: float = 120.0) -> None:
        self.config = {**BROKER_DEFAULTS, **{k: str(v) for k, v in (config or {}).items()}}
        self.extra_listeners = dict(extra_listeners or {})
        self.heap = heap
        self.start_timeout = start_timeout
        self._jars = jars
        self._log_path = Path(log_path) if log_path else None
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = self.controller_port = 0
        #: seconds spent in each step of the last :meth:`start` (jars, format, jvm) and in all
        self.timings: dict[str, float] = {}
        self.start_seconds = 0.0
        self._admin: AdminClient | None = None

    # -- start ---------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        if not self.port:
            raise KafkaBrokerError("the Kafka broker is not started: call start() or use "
                                   "`with KafkaBroker()`")
        return f"127.0.0.1:{self.port}"

    def listener_bootstrap(self, name: str) -> str:
        """The advertised ``host:port`` of one of ``extra_listeners``."""
        return self.extra_listeners[name][1]

    @property
    def log_path(self) -> Path:
        """The broker's log file (in its data directory unless ``log_path=`` was given)."""
        if self._log_path is None and self.dir is None:
            raise KafkaBrokerError("the Kafka broker has no log: it is not started (or was stopped and its "
                                   "data directory removed); pass log_path= to keep one")
        return self._log_path or self.dir / "kafka.log"  # type: ignore[operator]

    def start(self) -> "KafkaBroker":
        """Build or find the jars, format the storage, start the JVM and wait until it serves metadata."""
        if self.proc is not None and self.proc.poll() is None:
            raise KafkaBrokerError(f"this Kafka broker is already running at {self.bootstrap_servers}")
        began = time.monotonic()
        java = find_java()
        jars = jars_dir(self._jars)
        self.timings = {"jars": time.monotonic() - began}
        self.dir = Path(tempfile.mkdtemp(prefix="streamlet-kafka-"))
        if self._log_path:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        try:
            for attempt in range(3):
                if self._start_once(java, jars, last=attempt == 2):
                    break
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        self.timings["total"] = self.start_seconds
        return self

    def _java(self, java: str, jars: Path, *args: str) -> list[str]:
        return [java, f"-Xmx{self.heap}", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={build_file('log4j2.xml')}",
                f"-Dstreamlet.kafka.log={self.log_path}", "-cp", f"{jars}{os.sep}*", *args]

    def _start_once(self, java: str, jars: Path, last: bool) -> bool:
        """One try on fresh ports; False if a port was taken meanwhile (and not ``last``)."""
        assert self.dir is not None
        self._admin = None
        data = self.dir / "data"
        shutil.rmtree(data, ignore_errors=True)
        self.port, self.controller_port = free_port(), free_port()
        props = self.dir / "server.properties"
        props.write_text(self._properties(data))
        t = time.monotonic()
        fmt = subprocess.run(self._java(java, jars, "kafka.tools.StorageTool", "format", "-t", _cluster_id(),
                                        "-c", str(props)), capture_output=True, text=True, timeout=180)
        if fmt.returncode != 0:
            said = "\n".join(line for line in (fmt.stdout + fmt.stderr).splitlines()
                             if not line.startswith("\tat "))  # the Java exception, not its stack
            raise KafkaBrokerError(f"formatting the Kafka storage failed ({fmt.returncode}):\n"
                                   f"{said[-3000:]}\n{log_tail(self.log_path)}")
        self.timings["format"] = time.monotonic() - t
        t = time.monotonic()
        out = open(self.dir / "kafka.out", "ab")
        self.proc = subprocess.Popen(self._java(java, jars, "kafka.Kafka", str(props)), stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        try:
            self._wait_ready(time.monotonic() + self.start_timeout)
        except KafkaBrokerError:
            log_text = log_tail(self.log_path, 20000) + log_tail(self.dir / "kafka.out", 20000)
            if not last and self.proc.poll() is not None and "Address already in use" in log_text:
                return False
            raise
        self.timings["jvm"] = time.monotonic() - t
        return True

    def _properties(self, data: Path) -> str:
        names = ["PLAINTEXT", "CONTROLLER", *self.extra_listeners]
        listen = [f"PLAINTEXT://127.0.0.1:{self.port}", f"CONTROLLER://127.0.0.1:{self.controller_port}"]
        advertise = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        for name, (port, advertised) in self.extra_listeners.items():
            listen.append(f"{name}://127.0.0.1:{port}")
            advertise.append(f"{name}://{advertised}")
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": ",".join(listen),
            "advertised.listeners": ",".join(advertise),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(f"{n}:PLAINTEXT" for n in names),
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "log.dirs": str(data),
            **self.config,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _wait_ready(self, deadline: float) -> None:
        """Until the broker answers a metadata request naming itself; the log tail if it does not."""
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise KafkaBrokerError(self._failure(f"the Kafka JVM exited ({self.proc.returncode})"))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                md = self.admin().list_topics(timeout=2)
                if 1 in md.brokers:
                    return
            except (OSError, KafkaException):
                pass
            if time.monotonic() > deadline:
                raise KafkaBrokerError(self._failure(f"the Kafka broker did not answer within "
                                                     f"{self.start_timeout:.0f} s"))
            time.sleep(0.1)

    def _failure(self, what: str) -> str:
        assert self.dir is not None
        return (f"{what} (Kafka {kafka_version()}, data in {self.dir}); its log ends:\n"
                f"{log_tail(self.log_path)}\n{log_tail(self.dir / 'kafka.out')}")

    # -- use -----------------------------------------------------------------------------

    def admin(self) -> AdminClient:
        """An Admin client of this broker (kept; quiet)."""
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        return self._admin

    def create_topic(self, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> None:
        """Create a topic (an existing one is left alone); returns once the metadata shows it."""
        from streamlet.broker.admin import KafkaTopicAdmin

        KafkaTopicAdmin(self.bootstrap_servers, {}).create({name: partitions}, config)

    def reset(self, timeout: float = 30.0) -> None:
        """Delete every topic but the broker's own (``__*``) and every consumer group.

        A group that still has members (a killed client whose session has not expired yet)
        is waited for, up to ``timeout``.
        """
        admin = self.admin()
        deadline = time.monotonic() + timeout
        groups = {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid}
        topics = [t for t in admin.list_topics(timeout=10).topics if not t.startswith("__")]
        if topics:
            for name, fut in admin.delete_topics(topics, operation_timeout=timeout).items():
                _ignore(fut, KafkaError.UNKNOWN_TOPIC_OR_PART, what=f"deleting topic {name!r}")
        while topics and set(topics) & set(admin.list_topics(timeout=10).topics):
            if time.monotonic() > deadline:
                raise KafkaBrokerError(f"topics {sorted(topics)} were still listed {timeout:.0f} s after "
                                       "their deletion")
            time.sleep(0.05)
        while groups:
            for group, fut in admin.delete_consumer_groups(list(groups), request_timeout=10).items():
                if _ignore(fut, KafkaError.GROUP_ID_NOT_FOUND, KafkaError.NON_EMPTY_GROUP,
                           what=f"deleting group {group!r}") != KafkaError.NON_EMPTY_GROUP:
                    groups.discard(group)
            if groups and time.monotonic() > deadline:
                raise KafkaBrokerError(f"consumer groups {sorted(groups)} still have members {timeout:.0f} s "
                                       "on: stop their clients (or wait out their session timeout)")
            if groups:
                time.sleep(0.2)

    # -- stop ----------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the JVM (SIGTERM: a clean shutdown; SIGKILL after ``timeout``) and remove its data."""
        atexit.unregister(self.stop)
        self._admin = None
        stop_process(self.proc, timeout)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        self.port = 0

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ignore(future: Any, *codes: int, what: str) -> int | None:
    """Wait for an admin future; the error code if it is one of ``codes``, else raise."""
    try:
        future.result()
        return None
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        code = err.code() if isinstance(err, KafkaError) else None
        if code in codes:
            return code
        raise KafkaBrokerError(f"{what} failed: {exc}") from exc
