"""Create and inspect topics through one interface, whatever the broker.

* :class:`KafkaTopicAdmin` — the Admin API (real Kafka, Tansu, ...).
* :class:`EmbeddedTopicAdmin` — the mock cluster's C API, in this process.
* :class:`ControlTopicAdmin` — a ``streamlet broker`` process, asked through
  its control topic (the mock has no CreateTopics API).

:func:`connect` picks the right one for a ``brokers`` setting.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import orjson
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streamlet.errors import ConfigError, client_error_text

#: Present on every ``streamlet broker``: workers write topic requests to it.
CONTROL_TOPIC = "__streamlet_control"

#: librdkafka settings that only consumers or producers take (kept off admin clients).
_CLIENT_ONLY_PREFIXES = ("fetch.", "queued.", "linger", "batch.", "enable.idempotence", "acks",
                         "partition.assignment", "session.timeout", "heartbeat", "max.poll",
                         "auto.offset", "isolation", "group.", "compression", "message.timeout",
                         "delivery.", "queue.buffering", "enable.partition.eof", "partitioner",
                         "retries", "retry.", "transaction", "client.rack", "check.crcs")


def admin_settings(bootstrap: str, client_config: dict[str, Any]) -> dict[str, Any]:
    conf = {k: v for k, v in client_config.items() if not k.startswith(_CLIENT_ONLY_PREFIXES)}
    conf["bootstrap.servers"] = bootstrap
    return conf


class TopicAdmin(Protocol):
    bootstrap_servers: str

    def partitions(self) -> dict[str, int]:
        """Every topic on the cluster with its partition count."""

    def create(self, topics: dict[str, int], config: dict[str, str] | None = None) -> None:
        """Create the topics that do not exist yet (an existing one is left alone)."""

    def close(self) -> None: ...


class _MetadataAdmin:
    def __init__(self, bootstrap: str, client_config: dict[str, Any]) -> None:
        self.bootstrap_servers = bootstrap
        try:
            self._admin = AdminClient(admin_settings(bootstrap, client_config))
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(
                f"bad client setting: {client_error_text(exc)} (check App(config=...) / STREAMLET_CONFIG "
                "against librdkafka's CONFIGURATION.md)"
            ) from exc

    def partitions(self, timeout: float = 10.0) -> dict[str, int]:
        # No topic argument: a metadata request for all topics creates none
        # (asking for one unknown topic auto-creates it on some brokers).
        try:
            md = self._admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise ConfigError(
                f"cannot reach the brokers at {self.bootstrap_servers!r} ({client_error_text(exc)}); check "
                "brokers= / STREAMLET_BROKERS and that the cluster is up"
            ) from exc
        return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}

    def _wait_for(self, topics: dict[str, int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            have = self.partitions()
            if all(have.get(t) for t in topics):
                return
            if time.monotonic() > deadline:
                missing = sorted(t for t in topics if not have.get(t))
                raise ConfigError(f"topics {missing} did not appear on {self.bootstrap_servers}")
            time.sleep(0.05)

    def close(self) -> None:
        self._admin = None  # type: ignore[assignment]


class KafkaTopicAdmin(_MetadataAdmin):
    """Topics through the Kafka Admin API."""

    def create(self, topics: dict[str, int], config: dict[str, str] | None = None,
               replication_factor: int = -1, timeout: float = 30.0) -> None:
        have = self.partitions()
        new = [NewTopic(t, n, replication_factor, config=dict(config or {}))
               for t, n in topics.items() if t not in have]
        if not new:
            return
        futures = self._admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
        for name, fut in futures.items():
            try:
                fut.result(timeout=timeout)
            except KafkaException as exc:
                if exc.args and getattr(exc.args[0], "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                    continue
                raise ConfigError(f"could not create topic {name!r}: {exc}") from exc
        self._wait_for({t.topic: t.num_partitions for t in new}, timeout)

    def topic_config(self, topic: str, timeout: float = 10.0) -> dict[str, str]:
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        out = self._admin.describe_configs([res])[res].result(timeout=timeout)
        return {k: v.value for k, v in out.items()}


class EmbeddedTopicAdmin(_MetadataAdmin):
    """Topics on an in-process :class:`~streamlet.broker.mock.MockCluster`."""

    def __init__(self, cluster: Any, client_config: dict[str, Any] | None = None) -> None:
        super().__init__(cluster.bootstrap_servers, client_config or {})
        self.cluster = cluster

    def create(self, topics: dict[str, int], config: dict[str, str] | None = None) -> None:
        have = self.partitions()
        missing = {t: n for t, n in topics.items() if t not in have}
        self.cluster.create_topics(missing)
        if missing:
            self._wait_for(missing, 10.0)


class ControlTopicAdmin(_MetadataAdmin):
    """Topics on a ``streamlet broker`` process, requested through :data:`CONTROL_TOPIC`."""

    def create(self, topics: dict[str, int], config: dict[str, str] | None = None,
               timeout: float = 15.0) -> None:
        have = self.partitions()
        missing = {t: n for t, n in topics.items() if t not in have}
        if not missing:
            return
        producer = Producer({"bootstrap.servers": self.bootstrap_servers, "partitioner": "murmur2_random"})
        producer.produce(CONTROL_TOPIC, orjson.dumps({"create": missing}))
        if producer.flush(timeout) != 0:
            raise ConfigError(f"the streamlet broker at {self.bootstrap_servers} did not take the request")
        self._wait_for(missing, timeout)


def connect(brokers: str, client_config: dict[str, Any], embedded: Any = None) -> TopicAdmin:
    """The :class:`TopicAdmin` for ``brokers`` (``embedded`` is the in-process cluster, if any)."""
    if embedded is not None:
        return EmbeddedTopicAdmin(embedded, client_config)
    probe = _MetadataAdmin(brokers, client_config)
    if CONTROL_TOPIC in probe.partitions():
        return ControlTopicAdmin(brokers, client_config)
    return KafkaTopicAdmin(brokers, client_config)
