"""Static membership: the instance id from settings or the pod name, the consumer setting, and the
broker's FENCED_INSTANCE_ID as a typed error."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

import streamlet as sl
from streamlet.config import Config
from streamlet.errors import ConfigError, FencedInstanceIdError
from streamlet.runtime.clients import consumer_config, make_consumer, producer_config
from streamlet.runtime.membership import fenced_error, is_fenced_instance


@pytest.fixture(autouse=True)
def _no_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STREAMLET_INSTANCE_ID", "POD_NAME", "HOSTNAME", "KUBERNETES_SERVICE_HOST",
                 "STREAMLET_SHUTDOWN_GRACE_MS", "STREAMLET_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_dynamic_membership_by_default() -> None:
    app = sl.App("orders")
    assert app.config.instance_id is None and app.config.shutdown_grace_ms == 25_000
    assert "group.instance.id" not in consumer_config(app.config, "b:1", {})


def test_the_instance_id_becomes_group_instance_id_on_the_consumer_only() -> None:
    app = sl.App("orders", brokers="k:9092", instance_id="orders-2")
    c = consumer_config(app.config, "b:1", {})
    assert c["group.instance.id"] == "orders-2" and c["group.id"] == "orders"
    assert c["session.timeout.ms"] == 45_000  # covers a restart of the worker
    assert "group.instance.id" not in producer_config(app.config, "b:1", {})
    make_consumer(c).close()  # librdkafka takes it


def test_the_environment_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLET_INSTANCE_ID", "orders-0")
    monkeypatch.setenv("STREAMLET_SHUTDOWN_GRACE_MS", "5000")
    config = sl.App("orders", instance_id="other").config
    assert config.instance_id == "orders-0" and config.shutdown_grace_ms == 5000


def test_group_instance_id_in_config_is_the_same_setting() -> None:
    assert sl.App("orders", config={"group.instance.id": "w-1"}).config.instance_id == "w-1"
    assert sl.App("orders", instance_id="w-1", config={"group.instance.id": "w-1"}).config.instance_id == "w-1"
    with pytest.raises(ConfigError, match="differ: set one"):
        sl.App("orders", instance_id="w-1", config={"group.instance.id": "w-2"})


def test_auto_takes_the_pod_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "orders-2")
    assert sl.App("orders", instance_id="auto").config.instance_id == "orders-2"
    monkeypatch.delenv("POD_NAME")
    monkeypatch.setenv("HOSTNAME", "orders-1")
    with pytest.raises(ConfigError, match="neither POD_NAME nor"):  # HOSTNAME counts inside Kubernetes only
        sl.App("orders", instance_id="auto")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert sl.App("orders", instance_id="auto").config.instance_id == "orders-1"


def test_a_pod_name_of_a_deployment_is_warned_about(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("POD_NAME", "orders-7d9f8c6b5-xk2pq")
    assert sl.App("orders", instance_id="auto").config.instance_id == "orders-7d9f8c6b5-xk2pq"
    assert "does not look like a StatefulSet pod" in caplog.text


@pytest.mark.parametrize("bad", ["", "has space", "x" * 250, "orders/2"])
def test_a_bad_instance_id_fails_at_start(bad: str) -> None:
    with pytest.raises(ConfigError, match="is not valid: a static member id"):
        sl.App("orders", instance_id=bad)


def test_a_bad_grace_fails_at_start() -> None:
    with pytest.raises(ConfigError, match="shutdown_grace_ms"):
        sl.App("orders", shutdown_grace_ms=0)


def _config() -> Config:
    return Config(application_id="orders", brokers="k:9092", instance_id="orders-2")


def test_fenced_instance_id_from_the_broker_is_a_typed_error() -> None:
    err = KafkaError(KafkaError.FENCED_INSTANCE_ID, "Broker: Static consumer fenced")
    exc = fenced_error(err, _config())
    assert isinstance(exc, FencedInstanceIdError) and isinstance(exc, ConfigError)
    assert exc.instance_id == "orders-2"
    assert "same instance id 'orders-2'" in str(exc) and "give every worker its own instance_id" in str(exc)


def test_librdkafkas_fatal_error_for_it_is_recognised_too() -> None:
    # as seen on Kafka 4.4: a consumer message with code _FATAL, not flagged fatal
    err = KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced by other consumer with "
                                        "same group.instance.id")
    assert is_fenced_instance(err)
    assert isinstance(fenced_error(err, _config()), FencedInstanceIdError)


@pytest.mark.parametrize("err", [KafkaError(KafkaError._FATAL, "Fatal error: producer fenced"),
                                 KafkaError(KafkaError.UNKNOWN_MEMBER_ID, "unknown member"), None, "text"])
def test_other_errors_are_not_a_fenced_instance(err: object) -> None:
    assert fenced_error(err, _config()) is None
