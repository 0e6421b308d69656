"""Client settings: streamlet's defaults, the user's overrides, and what librdkafka accepts."""

from __future__ import annotations

import pytest

from streamlet.config import Config
from streamlet.errors import ConfigError
from streamlet.runtime.clients import consumer_config, make_consumer, producer_config


def config(**client: object) -> Config:
    return Config(application_id="app", brokers="localhost:9092", client_config=dict(client))


def test_defaults_then_user_settings_and_the_group_is_the_application() -> None:
    c = consumer_config(config(**{"session.timeout.ms": 10_000, "linger.ms": 1}), "b:1", {})
    assert c["group.id"] == "app" and c["bootstrap.servers"] == "b:1"
    assert c["partition.assignment.strategy"] == "cooperative-sticky"
    assert c["enable.auto.commit"] is False
    assert c["session.timeout.ms"] == 10_000
    assert "linger.ms" not in c  # producer settings stay with the producer
    p = producer_config(config(**{"linger.ms": 1, "fetch.wait.max.ms": 5}), "b:1", {})
    assert p["linger.ms"] == 1 and p["enable.idempotence"] is True and "fetch.wait.max.ms" not in p


def test_kip_848_group_protocol_drops_the_classic_group_settings() -> None:
    c = consumer_config(config(**{"group.protocol": "consumer"}), "b:1", {})
    assert "partition.assignment.strategy" not in c and "session.timeout.ms" not in c
    make_consumer(c).close()  # librdkafka accepts it (it rejects classic settings with this protocol)


def test_a_bad_setting_is_a_config_error_that_says_where_to_look() -> None:
    with pytest.raises(ConfigError, match="librdkafka"):
        make_consumer(consumer_config(config(**{"fetch.wait.max.ms": "soon"}), "b:1", {}))


def test_on_the_embedded_broker_the_session_timeout_is_short_unless_set() -> None:
    c = consumer_config(config(), "b:1", {}, mock_broker=True)
    assert c["session.timeout.ms"] == 6_000 and c["heartbeat.interval.ms"] == 500
    c = consumer_config(config(**{"session.timeout.ms": 20_000}), "b:1", {}, mock_broker=True)
    assert c["session.timeout.ms"] == 20_000
    assert consumer_config(config(), "b:1", {})["session.timeout.ms"] == 45_000  # real Kafka


def test_topics_read_together_get_the_range_assignor() -> None:
    together = ["orders", "users"]
    assert consumer_config(config(), "b:1", {}, copartitioned=together)[
        "partition.assignment.strategy"] == "range"
    assert consumer_config(config(), "b:1", {})["partition.assignment.strategy"] == "cooperative-sticky"
    kip848 = consumer_config(config(**{"group.protocol": "consumer"}), "b:1", {}, copartitioned=together)
    assert kip848["group.remote.assignor"] == "range" and "partition.assignment.strategy" not in kip848
    with pytest.raises(ConfigError, match=r"cooperative-sticky.*\['orders', 'users'\].*range"):
        consumer_config(config(**{"partition.assignment.strategy": "cooperative-sticky"}), "b:1", {},
                        copartitioned=together)
