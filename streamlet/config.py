"""Application settings: ``App(...)`` arguments, overridden by ``STREAMLET_*`` variables.

The environment wins so that one script runs unchanged in every deployment
(``STREAMLET_BROKERS=kafka:9092 streamlet run app.py``), as in docker-compose
and Kubernetes.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from streamlet.errors import ConfigError

GUARANTEES = ("at_least_once", "exactly_once")
ERROR_POLICIES = ("fail", "skip", "dead_letter")
#: what a data-loss check does when it finds records a broker deleted before they were used
LOSS_POLICIES = ("fail", "warn")
_APP_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


@dataclass
class Config:
    application_id: str
    brokers: str = "embedded"
    state_dir: str = "./state"
    guarantee: str = "at_least_once"
    commit_interval_ms: int = 1000
    on_error: str = "fail"
    dead_letter_topic: str | None = None
    #: librdkafka settings applied to the consumer and the producer (after streamlet's own).
    client_config: dict[str, Any] = field(default_factory=dict)
    #: records per consume() call
    batch_size: int = 10_000
    #: partitions of topics an in-process embedded broker creates on its own
    embedded_partitions: int = 4
    #: a changelog that starts after the offset a restore needs (records deleted): fail or warn
    on_changelog_truncated: str = "fail"
    #: an input partition whose committed offset is below its log start (records deleted unread)
    on_input_truncated: str = "warn"
    #: a co-partitioned input record on another partition than murmur2 of its key gives
    on_partition_mismatch: str = "warn"
    #: how often records of repartition topics are deleted up to the committed offsets
    repartition_purge_interval_ms: int = 30_000
    #: a record too late for every window it falls in: dropped (counted, logged) or also dead-lettered
    late_records: str = "drop"
    #: ``host:port`` of this worker's HTTP side (health, readiness, metrics, interactive queries), as
    #: other workers reach it (Kafka Streams' ``application.server``); ``None``: no HTTP side
    application_server: str | None = None
    #: warm copies of each task's stores kept on other workers (Kafka Streams' num.standby.replicas)
    num_standby_replicas: int = 0
    #: static group membership (``group.instance.id``): this worker's stable id, or None (dynamic);
    #: ``"auto"`` at resolve takes the Kubernetes pod name (docs/failover.md)
    instance_id: str | None = None
    #: after SIGTERM / SIGINT: how long commit, flush and leaving the group may take before the
    #: process exits non-zero without committing more (keep it below terminationGracePeriodSeconds)
    shutdown_grace_ms: int = 25_000
    #: who places tasks: ``"group"`` (librdkafka's cooperative-sticky assignor) or ``"streamlet"``
    #: (streamlet's own, Kafka Streams' KIP-441: actives to caught-up copies, warm-ups, probing)
    task_assignor: str = "group"
    #: task_assignor="streamlet": a copy within this many changelog records counts as caught up
    acceptable_recovery_lag: int = 10_000
    #: task_assignor="streamlet": warm-up copies placed at once
    max_warmup_replicas: int = 2
    #: task_assignor="streamlet": while warm-ups exist, how often the group is asked to re-place
    probing_rebalance_interval_ms: int = 60_000

    @property
    def embedded(self) -> bool:
        return self.brokers == "embedded"

    @property
    def dead_letter(self) -> str:
        return self.dead_letter_topic or f"{self.application_id}-dead-letter"


_ENV = {
    "brokers": ("STREAMLET_BROKERS", str),
    "state_dir": ("STREAMLET_STATE_DIR", str),
    "guarantee": ("STREAMLET_GUARANTEE", str),
    "commit_interval_ms": ("STREAMLET_COMMIT_INTERVAL_MS", int),
    "on_error": ("STREAMLET_ON_ERROR", str),
    "dead_letter_topic": ("STREAMLET_DEAD_LETTER_TOPIC", str),
    "batch_size": ("STREAMLET_BATCH_SIZE", int),
    "on_changelog_truncated": ("STREAMLET_ON_CHANGELOG_TRUNCATED", str),
    "on_input_truncated": ("STREAMLET_ON_INPUT_TRUNCATED", str),
    "on_partition_mismatch": ("STREAMLET_ON_PARTITION_MISMATCH", str),
    "repartition_purge_interval_ms": ("STREAMLET_REPARTITION_PURGE_INTERVAL_MS", int),
    "late_records": ("STREAMLET_LATE_RECORDS", str),
    "application_server": ("STREAMLET_APPLICATION_SERVER", str),
    "num_standby_replicas": ("STREAMLET_NUM_STANDBY_REPLICAS", int),
    "instance_id": ("STREAMLET_INSTANCE_ID", str),
    "shutdown_grace_ms": ("STREAMLET_SHUTDOWN_GRACE_MS", int),
    "task_assignor": ("STREAMLET_TASK_ASSIGNOR", str),
    "acceptable_recovery_lag": ("STREAMLET_ACCEPTABLE_RECOVERY_LAG", int),
    "max_warmup_replicas": ("STREAMLET_MAX_WARMUP_REPLICAS", int),
    "probing_rebalance_interval_ms": ("STREAMLET_PROBING_REBALANCE_INTERVAL_MS", int),
}


def resolve(application_id: str, **given: Any) -> Config:
    """Build a :class:`Config` from arguments and the environment, and check it."""
    if not isinstance(application_id, str) or not _APP_ID.match(application_id):
        raise ConfigError(
            f"application id {application_id!r} is not valid: use 1-200 characters from "
            "letters, digits, '.', '_' and '-' (it names the consumer group and internal topics)"
        )
    values: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    for key, (env, conv) in _ENV.items():
        raw = os.environ.get(env)
        if raw is None or raw == "":
            continue
        try:
            values[key] = conv(raw)
        except ValueError:
            raise ConfigError(f"{env}={raw!r} is not a valid {conv.__name__}") from None
    extra = os.environ.get("STREAMLET_CONFIG")
    if extra:
        # "key=value,key=value" librdkafka settings from the environment
        cfg = dict(values.get("client_config") or {})
        for item in extra.split(","):
            if "=" not in item:
                raise ConfigError(f"STREAMLET_CONFIG item {item!r} is not key=value")
            k, v = item.split("=", 1)
            cfg[k.strip()] = v.strip()
        values["client_config"] = cfg
    if "commit_interval_ms" not in values and values.get("guarantee") == "exactly_once":
        values["commit_interval_ms"] = 100  # Kafka Streams' default under exactly-once: outputs show sooner
    config = Config(application_id=application_id, **values)
    config.instance_id = _instance_id(config, os.environ)
    check(config)
    return config


#: Kafka's rule for a group.instance.id (as for topic names): these characters, at most 249
_INSTANCE_ID = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
#: a StatefulSet pod's name: NAME-ORDINAL (a Deployment's ends in a random suffix instead)
_STATEFULSET_POD = re.compile(r"-\d+$")


def _instance_id(config: Config, environ: Any) -> str | None:
    """The static member id: ``instance_id`` (``"auto"``: the pod name), or ``group.instance.id``
    given in ``config=``; None for dynamic membership. Raises ConfigError for a bad one."""
    given = config.instance_id
    in_client = config.client_config.get("group.instance.id") if isinstance(config.client_config, dict) else None
    if given is not None and in_client is not None and str(in_client) != given and given != "auto":
        raise ConfigError(f"instance_id={given!r} and config group.instance.id={in_client!r} differ: set one")
    if given is None:
        given = None if in_client is None else str(in_client)
    if given == "auto":
        pod = environ.get("POD_NAME") or (environ.get("HOSTNAME") if environ.get("KUBERNETES_SERVICE_HOST") else None)
        if not pod:
            raise ConfigError(
                "instance_id='auto' takes the Kubernetes pod name, but neither POD_NAME nor (inside Kubernetes) "
                "HOSTNAME is set: give the pod's name through the downward API (env POD_NAME from "
                "fieldRef metadata.name) or set instance_id / STREAMLET_INSTANCE_ID yourself")
        given = pod
        if not _STATEFULSET_POD.search(pod):
            logging.getLogger("streamlet.config").warning(
                "instance_id: pod name %r does not look like a StatefulSet pod (NAME-ORDINAL); a Deployment's pod "
                "gets a new name at each restart, so each restart leaves a static member behind whose partitions "
                "wait for session.timeout.ms", pod)
    if given is None:
        return None
    if not isinstance(given, str) or not _INSTANCE_ID.match(given):
        raise ConfigError(
            f"instance_id={given!r} is not valid: a static member id needs 1-249 characters from letters, digits, "
            "'.', '_' and '-', different for every worker of the application (e.g. the StatefulSet pod name "
            "'orders-2'; instance_id='auto' takes it from the pod)")
    return given


def check(config: Config) -> None:
    if config.guarantee not in GUARANTEES:
        raise ConfigError(
            f"guarantee={config.guarantee!r} is not valid: use one of {', '.join(GUARANTEES)} "
            "(App(guarantee=...) or STREAMLET_GUARANTEE)"
        )
    if config.on_error not in ERROR_POLICIES:
        raise ConfigError(
            f"on_error={config.on_error!r} is not valid: use one of {', '.join(ERROR_POLICIES)} "
            "(App(on_error=...) or STREAMLET_ON_ERROR)"
        )
    for name in ("on_changelog_truncated", "on_input_truncated", "on_partition_mismatch"):
        value = getattr(config, name)
        allowed = LOSS_POLICIES + (("ignore",) if name == "on_partition_mismatch" else ())
        if value not in allowed:
            raise ConfigError(
                f"{name}={value!r} is not valid: use 'fail' (stop the worker) or 'warn' (log, count and go "
                f"on){' or ignore' if 'ignore' in allowed else ''} (App({name}=...) or STREAMLET_{name.upper()})"
            )
    if config.late_records not in ("drop", "dead_letter"):
        raise ConfigError(
            f"late_records={config.late_records!r} is not valid: use 'drop' (count and log a record too late "
            "for its windows) or 'dead_letter' (also send it to the dead-letter topic) (App(late_records=...) "
            "or STREAMLET_LATE_RECORDS)"
        )
    if not isinstance(config.commit_interval_ms, int) or config.commit_interval_ms <= 0:
        raise ConfigError(f"commit_interval_ms={config.commit_interval_ms!r} must be a positive int")
    if not isinstance(config.repartition_purge_interval_ms, int) or config.repartition_purge_interval_ms <= 0:
        raise ConfigError(f"repartition_purge_interval_ms={config.repartition_purge_interval_ms!r} must be a "
                          "positive int (milliseconds)")
    if (not isinstance(config.num_standby_replicas, int) or isinstance(config.num_standby_replicas, bool)
            or config.num_standby_replicas < 0):
        raise ConfigError(f"num_standby_replicas={config.num_standby_replicas!r} must be an int >= 0 (warm "
                          "copies of each task's stores on other workers; App(num_standby_replicas=...) or "
                          "STREAMLET_NUM_STANDBY_REPLICAS)")
    if config.task_assignor not in ("group", "streamlet"):
        raise ConfigError(f"task_assignor={config.task_assignor!r} must be 'group' (librdkafka's cooperative-sticky "
                          "assignor) or 'streamlet' (tasks to caught-up workers, warm-ups; docs/architecture.md) "
                          "(App(task_assignor=...) or STREAMLET_TASK_ASSIGNOR); every worker of an application "
                          "must use the same")
    for name in ("acceptable_recovery_lag", "max_warmup_replicas", "probing_rebalance_interval_ms"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if name.startswith("probing") else 0):
            raise ConfigError(f"{name}={value!r} must be an int >= {1 if name.startswith('probing') else 0}")
    if not isinstance(config.shutdown_grace_ms, int) or config.shutdown_grace_ms <= 0:
        raise ConfigError(f"shutdown_grace_ms={config.shutdown_grace_ms!r} must be a positive int (milliseconds "
                          "that commit, flush and leaving the group may take after SIGTERM)")
    if not isinstance(config.batch_size, int) or config.batch_size <= 0:
        raise ConfigError(f"batch_size={config.batch_size!r} must be a positive int")
    if not isinstance(config.brokers, str) or not config.brokers.strip():
        raise ConfigError("brokers must be 'embedded' or 'host:port[,host:port...]'")
    if not config.embedded:
        for b in config.brokers.split(","):
            host, _, port = b.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(
                    f"broker address {b!r} is not host:port (brokers={config.brokers!r}); "
                    "use brokers='host:9092,host2:9092' or 'embedded'"
                )
    if config.application_server is not None:
        host, sep, port = str(config.application_server).rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(
                f"application_server={config.application_server!r} must be HOST:PORT: the address other "
                "workers and Kubernetes probes reach this worker's HTTP side at, e.g. 'orders-0.orders:8080' "
                "(App(application_server=...) or STREAMLET_APPLICATION_SERVER)")
    if not isinstance(config.client_config, dict):
        raise ConfigError("config= must be a dict of librdkafka settings")
    reserved = {"group.id", "enable.auto.commit", "bootstrap.servers"}
    clash = reserved & set(config.client_config)
    if clash:
        raise ConfigError(
            f"config sets {sorted(clash)}, which streamlet manages: the group id is the "
            "application id and the brokers come from brokers= / STREAMLET_BROKERS"
        )
