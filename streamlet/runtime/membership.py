"""Static group membership (Kafka's KIP-345, ``group.instance.id``) for a worker.

A worker given an ``instance_id`` (``App(instance_id=...)``, ``STREAMLET_INSTANCE_ID``,
``"auto"``: the Kubernetes pod name — see :mod:`streamlet.config`) joins its
group as a *static member*:

* restarted within ``session.timeout.ms`` (45 s by default) with the same id, it
  gets the partitions it had back, and the other members see no rebalance;
* librdkafka does not send LeaveGroup when a static member closes, so a clean
  stop does not move its partitions either: they wait for its return, or for
  the session timeout (a scale-down waits that long);
* a second worker with the same id takes the first one's place: the broker
  fences the first with ``FENCED_INSTANCE_ID``, which becomes
  :class:`~streamlet.errors.FencedInstanceIdError`.

docs/failover.md says how to run it on Kubernetes.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError

from streamlet.config import Config
from streamlet.errors import FencedInstanceIdError

log = logging.getLogger("streamlet.runtime")


def consumer_settings(config: Config) -> dict[str, Any]:
    """The consumer settings static membership adds: ``group.instance.id`` (none when dynamic)."""
    if config.instance_id is None:
        return {}
    return {"group.instance.id": config.instance_id}


def describe(config: Config, settings: dict[str, Any]) -> None:
    """One log line at start saying how this worker is a member of its group."""
    if config.instance_id is None:
        return
    log.info("static member %r of group %r: a restart within session.timeout.ms=%s ms gets the same partitions "
             "back without a rebalance; a stop does not hand them over before that timeout",
             config.instance_id, config.application_id, settings.get("session.timeout.ms", "?"))


def is_fenced_instance(err: Any) -> bool:
    """Whether a client error is the broker fencing this static member (another member joined with the
    same ``group.instance.id``): code ``FENCED_INSTANCE_ID``, or the fatal error librdkafka raises for it."""
    if not isinstance(err, KafkaError):
        return False
    if err.code() == KafkaError.FENCED_INSTANCE_ID:
        return True
    # librdkafka turns it into a fatal error (code _FATAL, sometimes not flagged fatal on a consumer
    # message): "Static consumer fenced by other consumer with same group.instance.id"
    text = (err.str() or "").lower()
    return "fenced" in text and "group.instance.id" in text


def fenced_error(err: Any, config: Config) -> FencedInstanceIdError | None:
    """The typed error for a fenced static member, or None when ``err`` is something else."""
    if not is_fenced_instance(err):
        return None
    return FencedInstanceIdError(
        f"another worker joined group {config.application_id!r} with the same instance id "
        f"{config.instance_id!r}, and the broker fenced this one ({err.str()}): give every worker its own "
        "instance_id (STREAMLET_INSTANCE_ID; on Kubernetes a StatefulSet's pod name, instance_id='auto'). This "
        "worker stops without committing; the other one owns the partitions now", config.instance_id)
