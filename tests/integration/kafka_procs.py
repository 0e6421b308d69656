"""Real Apache Kafka for the integration tests: one JVM per test session, a clean broker per test.

A JVM starts in seconds on two cores, so the whole session shares one
:class:`~streamlet.testing.kafka.KafkaBroker` (started by the first test that
asks for it, stopped by the conftest at the end of the session). Each test's
:class:`KafkaTestBroker` first deletes every topic and consumer group the
tests before it left, so that it sees an empty broker, as with the other kinds.

The broker has a second listener, ``PROXIED``, reached only through a
:class:`~tests.integration.proxy.TcpProxy` whose port it advertises: clients
that bootstrap there (tests marked ``faults``) run every connection through
the proxy, and :meth:`KafkaTestBroker.outage` cuts them; the other tests
connect directly.
"""

from __future__ import annotations

import time
from pathlib import Path

from streamlet.errors import KafkaBrokerError
from streamlet.testing.kafka import KafkaBroker, free_port
from streamlet.testing.kafka_jars import find_java, jars_dir
from tests.integration.proxy import TcpProxy


class KafkaSession:
    """The session's Kafka broker and the proxy in front of its ``PROXIED`` listener."""

    def __init__(self, log_path: Path) -> None:
        listen = free_port()
        self.proxy = TcpProxy(listen)
        self.broker = KafkaBroker(extra_listeners={"PROXIED": (listen, f"127.0.0.1:{self.proxy.port}")},
                                  log_path=log_path)
        try:
            self.broker.start()
        except BaseException:
            self.proxy.close()
            raise

    def stop(self) -> None:
        self.broker.stop()
        self.proxy.close()


_SESSION: KafkaSession | None = None
#: why Kafka cannot run in this session (no Java, no jars, a JVM that would not start): every
#: Kafka test fails at once with it rather than trying again
_UNAVAILABLE: KafkaBrokerError | None = None


def prepare_kafka() -> None:
    """Find Java and build the jars now (before the first test, outside its timeout)."""
    global _UNAVAILABLE
    try:
        find_java()
        jars_dir()
    except KafkaBrokerError as exc:
        _UNAVAILABLE = exc


def shared_kafka(log_dir: Path) -> KafkaSession:
    """The session's broker, started on first use (its log: ``log_dir/kafka-broker.log``)."""
    global _SESSION, _UNAVAILABLE
    if _UNAVAILABLE is not None:
        raise _UNAVAILABLE
    if _SESSION is None or _SESSION.broker.proc is None or _SESSION.broker.proc.poll() is not None:
        if _SESSION is not None:
            _SESSION.stop()  # the JVM died: the test that follows gets a new one
        try:
            _SESSION = KafkaSession(log_dir / "kafka-broker.log")
        except KafkaBrokerError as exc:
            _UNAVAILABLE = exc
            raise
    return _SESSION


def stop_shared_kafka() -> float | None:
    """Stop the session's broker, if one was started; its start time in seconds."""
    global _SESSION
    if _SESSION is None:
        return None
    started = _SESSION.broker.start_seconds
    _SESSION.stop()
    _SESSION = None
    return started


class KafkaTestBroker:
    """A test's view of the session's Kafka broker: emptied first, then ``topics`` created.

    Same interface as the other kinds (procs.py): ``kind``, ``bootstrap``,
    ``create_topic``, ``outage`` / ``wait_recovered`` (``proxied=True``), ``stop``.
    """

    kind = "kafka"

    def __init__(self, tmp: Path, topics: dict[str, int], proxied: bool = False) -> None:
        self.session = shared_kafka(tmp.parent)
        self.session.broker.reset()
        self.proxied = proxied
        self.bootstrap = (self.session.broker.listener_bootstrap("PROXIED") if proxied
                          else self.session.broker.bootstrap_servers)
        self.log_path = self.session.broker.log_path
        for name, count in topics.items():
            self.create_topic(name, count)

    def create_topic(self, name: str, partitions: int, config: dict[str, str] | None = None) -> None:
        self.session.broker.create_topic(name, partitions, config)

    def outage(self, for_ms: int) -> None:
        if not self.proxied:
            raise RuntimeError("ask for proxied=True (mark the test `faults`) to cut Kafka's connections")
        self.session.proxy.outage(for_ms)

    def wait_recovered(self, deadline_s: float = 30) -> None:
        deadline = time.monotonic() + deadline_s
        while self.session.proxy.is_down():
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy still refused connections after {deadline_s:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        """The JVM keeps running for the next test; an outage still under way ends now."""
        self.session.proxy.down_until = 0.0
