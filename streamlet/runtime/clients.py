"""Consumer and producer settings: streamlet's defaults, then the user's ``config=``."""

from __future__ import annotations

from typing import Any, Callable

from confluent_kafka import Consumer, KafkaException, Producer

from streamlet.config import Config
from streamlet.errors import ConfigError, client_error_text
from streamlet.runtime.client_logs import with_client_logger
from streamlet.runtime.membership import consumer_settings as membership_settings
from streamlet.runtime.produce_errors import DEFAULT_MAX_BYTES, Failure, produce_failure

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "partition.assignment.strategy": "cooperative-sticky",
    # librdkafka's default 1000 ms backoff caps a fast consumer near 130k records/s
    "fetch.queue.backoff.ms": 10,
    "queued.min.messages": 100_000,
    # librdkafka's 500 ms: a worker whose first fetches came back empty (seen on a join's start:
    # tables restoring, records held) waited that long for its next data; 100 ms made the join
    # benchmark 0.49x -> 0.92x of its raw loop, at the cost of more fetch requests while idle
    "fetch.wait.max.ms": 100,
    "session.timeout.ms": 45_000,
}

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    # same partition for the same key bytes as the Java client (co-partitioning with Kafka Streams)
    "partitioner": "murmur2_random",
    # errors only: no Python callback per delivered record
    "delivery.report.only.error": True,
}

_PRODUCER_ONLY = ("linger.ms", "batch.", "queue.buffering", "enable.idempotence", "acks",
                  "partitioner", "delivery.report", "compression", "message.timeout.ms",
                  "transactional", "transaction.", "retries", "message.send.max.retries")
_CONSUMER_ONLY = ("fetch.", "queued.", "partition.assignment", "session.timeout", "heartbeat",
                  "max.poll", "auto.offset", "isolation", "group.", "enable.auto", "enable.partition.eof",
                  "check.crcs")


def _split(client_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    consumer = {k: v for k, v in client_config.items() if not k.startswith(_PRODUCER_ONLY)}
    producer = {k: v for k, v in client_config.items() if not k.startswith(_CONSUMER_ONLY)}
    return consumer, producer


#: settings the broker owns under the KIP-848 protocol (``group.protocol=consumer``);
#: librdkafka refuses a consumer that sets them
_CLASSIC_GROUP_ONLY = ("partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms")


#: on the embedded (mock) broker a restarted member's group completes its rejoin only after
#: the session timeout: keep it short there (heartbeats are local)
MOCK_BROKER_DEFAULTS: dict[str, Any] = {"session.timeout.ms": 6_000, "heartbeat.interval.ms": 500}


def consumer_config(config: Config, bootstrap: str, callbacks: dict[str, Callable[..., Any]],
                    mock_broker: bool = False, copartitioned: list[str] | None = None) -> dict[str, Any]:
    """The consumer's settings. ``copartitioned``: topics one task reads together (a join's
    stream and table): partition N of each must go to the same member, which only the
    range assignor guarantees (the cooperative-sticky one places each topic on its own)."""
    user, _ = _split(config.client_config)
    defaults = {**CONSUMER_DEFAULTS, **MOCK_BROKER_DEFAULTS} if mock_broker else dict(CONSUMER_DEFAULTS)
    kip848 = str(user.get("group.protocol", "classic")).lower() == "consumer"
    if kip848:
        defaults = {k: v for k, v in defaults.items() if k not in _CLASSIC_GROUP_ONLY}
    if copartitioned:
        if kip848:
            defaults["group.remote.assignor"] = "range"
        else:
            defaults["partition.assignment.strategy"] = "range"
            chosen = str(user.get("partition.assignment.strategy", "range")).replace(" ", "")
            if chosen != "range":
                raise ConfigError(
                    f"partition.assignment.strategy={chosen!r} can give partition N of {copartitioned} to "
                    "different workers, but one task must read them together (a join or a merge of "
                    "several topics); remove the setting (streamlet then uses 'range', which keeps them "
                    "together)")
    return with_client_logger({**defaults, **user, **membership_settings(config), **callbacks,
                               "bootstrap.servers": bootstrap, "group.id": config.application_id})


def producer_config(config: Config, bootstrap: str, callbacks: dict[str, Callable[..., Any]]) -> dict[str, Any]:
    _, user = _split(config.client_config)
    return with_client_logger({**PRODUCER_DEFAULTS, **user, **callbacks, "bootstrap.servers": bootstrap})


def make_consumer(settings: dict[str, Any]) -> Consumer:
    try:
        return Consumer(settings)
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigError(
            f"bad consumer setting: {client_error_text(exc)} (check App(config=...) / STREAMLET_CONFIG "
            "against librdkafka's CONFIGURATION.md)"
        ) from exc


def make_producer(settings: dict[str, Any]) -> Producer:
    try:
        return Producer(settings)
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigError(
            f"bad producer setting: {client_error_text(exc)} (check App(config=...) / STREAMLET_CONFIG "
            "against librdkafka's CONFIGURATION.md)"
        ) from exc


def max_record_bytes(settings: dict[str, Any]) -> int:
    """The producer's ``message.max.bytes`` in ``settings`` (librdkafka's default if unset)."""
    try:
        return int(settings.get("message.max.bytes", DEFAULT_MAX_BYTES))
    except (TypeError, ValueError):
        return DEFAULT_MAX_BYTES


def produce_function(producer: Producer, max_bytes: int = DEFAULT_MAX_BYTES,
                     failed: Failure | None = None) -> Callable[..., None]:
    """``produce(topic, value, key, partition, timestamp, headers)`` that waits when the queue is full.

    A record ``produce()`` refuses (``KafkaException``) goes to ``failed(exc, topic, value, key,
    headers)``, which raises a typed error (default: :func:`produce_failure`: a ``ProduceError``,
    under the error policy, for a record over ``max_bytes``, the producer's ``message.max.bytes``)."""
    raw = producer.produce
    poll = producer.poll
    if failed is None:
        failed = produce_failure(max_bytes)

    # positional arguments: (topic, value, key, partition, callback, on_delivery, timestamp, headers);
    # keywords would cost a dict and a slower parse per record
    def produce(topic: str, value: bytes | None, key: bytes | None, partition: int = -1,
                timestamp: int = 0, headers: Any = None) -> None:
        try:
            raw(topic, value, key, partition, None, None, timestamp, headers)
        except BufferError:
            while True:
                poll(0.05)
                try:
                    raw(topic, value, key, partition, None, None, timestamp, headers)
                    return
                except BufferError:
                    continue
                except KafkaException as exc:
                    failed(exc, topic, value, key, headers)
        except KafkaException as exc:
            failed(exc, topic, value, key, headers)

    # generated sinks call the client directly and fall back to this wrapper on a full queue,
    # and to ``failed`` on a refused record
    produce.raw = raw  # type: ignore[attr-defined]
    produce.failed = failed  # type: ignore[attr-defined]
    return produce
