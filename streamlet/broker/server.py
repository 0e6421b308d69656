"""``streamlet broker``: host an embedded broker as its own process.

Workers in other processes connect to its bootstrap servers. Because the
mock has no CreateTopics API, the server consumes :data:`CONTROL_TOPIC`:
a worker that needs a topic writes ``{"create": {"name": partitions}}`` there
and waits until the topic shows in the metadata.

Tests inject faults through the same topic (each request is logged, so a
test can wait for it in the broker's log):

* ``{"broker_down": ID, "for_ms": MS}`` — broker ``ID`` drops its connections
  and refuses new ones, and comes back by itself after ``MS`` (default 3000):
  with a single broker nobody could deliver a request to bring it up;
* ``{"broker_up": ID}`` — bring a broker of a multi-broker cluster back now;
* ``{"rtt": {"broker": ID, "ms": MS}}`` — delay every response of a broker;
* ``{"request_errors": {"api": "Produce", "errors": [6, 6]}}`` — fail the next
  requests of one API (name or ApiKey number) with these Kafka error codes;
  ``{"clear_request_errors": "Produce"}`` drops those not used yet.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import orjson
from confluent_kafka import Consumer, TopicPartition

from streamlet.broker.admin import CONTROL_TOPIC
from streamlet.broker.mock import MockCluster

log = logging.getLogger("streamlet.broker")


class BrokerServer:
    """A :class:`MockCluster` plus the control-topic listener that creates topics on request."""

    def __init__(self, brokers: int = 1, topics: dict[str, int] | None = None) -> None:
        self.cluster = MockCluster(brokers=brokers)
        self.cluster.create_topic(CONTROL_TOPIC, 1)
        if topics:
            self.cluster.create_topics(topics)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="streamlet-broker-control", daemon=True)
        self.requests = 0

    @property
    def bootstrap_servers(self) -> str:
        return self.cluster.bootstrap_servers

    def start(self) -> "BrokerServer":
        self._thread.start()
        return self

    def _serve(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap_servers, "group.id": "__streamlet_broker",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 20,
                             "fetch.queue.backoff.ms": 10, "log_level": 3})
        consumer.assign([TopicPartition(CONTROL_TOPIC, 0, 0)])
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(100, 0.1):
                    if msg.error() is not None:
                        continue
                    self._handle(msg.value())
        finally:
            consumer.close()

    def _handle(self, payload: bytes | None) -> None:
        try:
            request = orjson.loads(payload or b"{}")
            for name, partitions in dict(request.get("create", {})).items():
                self.cluster.create_topic(str(name), int(partitions))
                log.info("created topic %s with %s partitions on request", name, partitions)
            if "broker_down" in request:
                # down now, up again after for_ms (with one broker nobody could ask then)
                broker_id, for_ms = int(request["broker_down"]), int(request.get("for_ms", 3000))
                self.cluster.broker_down(broker_id)
                log.warning("fault: broker %d down for %d ms on request", broker_id, for_ms)
                timer = threading.Timer(for_ms / 1000.0, self._broker_up, args=(broker_id,))
                timer.daemon = True
                timer.start()
            if "broker_up" in request:
                self._broker_up(int(request["broker_up"]))
            if "rtt" in request:
                spec = dict(request["rtt"])
                self.cluster.set_rtt(int(spec.get("broker", 1)), int(spec["ms"]))
                log.warning("fault: broker %s round-trip delay %s ms on request", spec.get("broker", 1), spec["ms"])
            if "request_errors" in request:
                spec = dict(request["request_errors"])
                errors = [int(e) for e in spec["errors"]]
                self.cluster.push_request_errors(spec["api"], errors)
                log.warning("fault: next %d %s request(s) fail with %s on request", len(errors), spec["api"], errors)
            if "clear_request_errors" in request:
                self.cluster.clear_request_errors(request["clear_request_errors"])
                log.warning("fault: %s request errors cleared on request", request["clear_request_errors"])
            self.requests += 1
        except Exception as exc:  # a bad request must not stop the broker
            log.error("ignored bad control request %r: %s", payload, exc)

    def _broker_up(self, broker_id: int) -> None:
        if self._stop.is_set():
            return  # the cluster is being closed
        self.cluster.broker_up(broker_id)
        log.warning("fault: broker %d up again", broker_id)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.cluster.close()

    def __enter__(self) -> "BrokerServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(server: BrokerServer, wait: Callable[[], None]) -> None:
    """Run until ``wait`` returns (a signal), then stop the broker."""
    try:
        wait()
    finally:
        server.stop()
