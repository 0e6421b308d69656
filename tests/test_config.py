"""App settings: validation at construction, STREAMLET_* environment over arguments."""

from __future__ import annotations

import pytest

import streamlet as sl
from streamlet.errors import ConfigError


@pytest.mark.parametrize("kwargs,match", [
    ({"guarantee": "maybe_once"}, "guarantee"),
    ({"on_error": "ignore"}, "on_error"),
    ({"brokers": "localhost"}, "host:port"),
    ({"commit_interval_ms": 0}, "commit_interval_ms"),
    ({"config": {"group.id": "x"}}, "manages"),
])
def test_bad_settings_fail_with_a_fix(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        sl.App("app", **kwargs)


def test_bad_application_id() -> None:
    with pytest.raises(ConfigError, match="application id"):
        sl.App("has spaces")


def test_environment_wins_over_arguments(monkeypatch) -> None:
    monkeypatch.setenv("STREAMLET_BROKERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("STREAMLET_ON_ERROR", "skip")
    monkeypatch.setenv("STREAMLET_COMMIT_INTERVAL_MS", "250")
    monkeypatch.setenv("STREAMLET_CONFIG", "linger.ms=20,fetch.wait.max.ms=50")
    app = sl.App("app", brokers="embedded", on_error="fail")
    assert app.config.brokers == "kafka-1:9092,kafka-2:9092"
    assert app.config.on_error == "skip" and app.config.commit_interval_ms == 250
    assert app.config.client_config == {"linger.ms": "20", "fetch.wait.max.ms": "50"}
    monkeypatch.setenv("STREAMLET_COMMIT_INTERVAL_MS", "soon")
    with pytest.raises(ConfigError, match="STREAMLET_COMMIT_INTERVAL_MS"):
        sl.App("app")


def test_defaults_and_dead_letter_name() -> None:
    app = sl.App("app")
    assert app.config.brokers == "embedded" and app.config.guarantee == "at_least_once"
    assert app.config.dead_letter == "app-dead-letter"
    assert sl.App("app", dead_letter_topic="dlq").config.dead_letter == "dlq"


def test_num_standby_replicas_defaults_to_none_and_refuses_negatives(monkeypatch) -> None:
    assert sl.App("app").config.num_standby_replicas == 0
    assert sl.App("app", num_standby_replicas=2).config.num_standby_replicas == 2
    monkeypatch.setenv("STREAMLET_NUM_STANDBY_REPLICAS", "1")
    assert sl.App("app").config.num_standby_replicas == 1
    monkeypatch.delenv("STREAMLET_NUM_STANDBY_REPLICAS")
    with pytest.raises(ConfigError, match="num_standby_replicas"):
        sl.App("app", num_standby_replicas=-1)


def test_task_assignor_is_group_or_streamlet(monkeypatch) -> None:
    assert sl.App("app").config.task_assignor == "group"
    assert sl.App("app", task_assignor="streamlet").config.task_assignor == "streamlet"
    monkeypatch.setenv("STREAMLET_TASK_ASSIGNOR", "streamlet")
    monkeypatch.setenv("STREAMLET_PROBING_REBALANCE_INTERVAL_MS", "5000")
    cfg = sl.App("app").config
    assert (cfg.task_assignor, cfg.probing_rebalance_interval_ms) == ("streamlet", 5000)
    monkeypatch.delenv("STREAMLET_TASK_ASSIGNOR")
    monkeypatch.delenv("STREAMLET_PROBING_REBALANCE_INTERVAL_MS")  # the environment wins over App(...)
    with pytest.raises(ConfigError, match="task_assignor='sticky' must be 'group'.*or 'streamlet'"):
        sl.App("app", task_assignor="sticky")
    with pytest.raises(ConfigError, match="max_warmup_replicas=-1 must be an int >= 0"):
        sl.App("app", max_warmup_replicas=-1)
    with pytest.raises(ConfigError, match="probing_rebalance_interval_ms=0 must be an int >= 1"):
        sl.App("app", probing_rebalance_interval_ms=0)
