"""A worker keeps processing the partitions it keeps while its group rebalances (real Kafka).

Why this is worth a test: the rolling-restart benchmark saw every partition of every worker pause
during another worker's restart (docs/failover.md, "Why dynamic members pause every partition").
One cause was the worker's own: the commit on the interval waited for the broker, and during a
rebalance the group coordinator answers an OffsetCommit only after this member's JoinGroup, that is
after every member of the group has rejoined. The record loop stood still for that long.

The test holds a rebalance open for tens of seconds: a plain consumer of the same group (subscribed
to another topic, so the worker keeps every partition of its own) is stopped with SIGSTOP, and a new
member joins; the coordinator then waits for the stopped member until its session times out. While
the group is still rebalancing, three waves of records are produced one after the other, and each must
reach the output: a wave is processed and committed (the commit waits behind the JoinGroup), and the
next one is processed only if that commit does not hold the record loop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only, pytest.mark.timeout(300)]

APP, PARTITIONS = "rebalance-app", 4
#: the stopped member's session: how long the coordinator waits for it (the rebalance stays open)
HOLD_SESSION_MS = 90_000

SCRIPT = """
import streamlet as sl

app = sl.App("rebalance-app")
app.stream("orders").map_values(lambda v: {"i": v["i"]}).to("echo")
"""

#: a plain group member: joins APP's group with a subscription to another topic and says so
MEMBER = """
import signal
import sys
from confluent_kafka import Consumer

stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "partition.assignment.strategy": "cooperative-sticky",
              "session.timeout.ms": int(sys.argv[4]), "heartbeat.interval.ms": 1000})
c.subscribe([sys.argv[3]], on_assign=lambda consumer, parts: print("assigned", flush=True))
while not stop:
    c.poll(0.2)
c.close()  # leaves the group
"""


def _group_state(admin: AdminClient) -> ConsumerGroupState:
    future = admin.describe_consumer_groups([APP], request_timeout=10)[APP]
    return future.result().state


def _echoed(bootstrap: str) -> set[int]:
    return {orjson.loads(m.value())["i"] for m in read_all(bootstrap, "echo", PARTITIONS)}


def test_a_worker_keeps_processing_its_partitions_while_the_group_rebalances(tmp_path: Path, broker) -> None:
    if broker.kind != "kafka":
        pytest.skip("needs a group coordinator that holds a rebalance open for a stopped member and lists the "
                    "group: Kafka (the embedded broker cannot describe groups, Tansu does not hold the round)")
    for topic, partitions in (("orders", PARTITIONS), ("echo", PARTITIONS), ("other", 1)):
        broker.create_topic(topic, partitions)
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    member_script = tmp_path / "member.py"
    member_script.write_text(textwrap.dedent(MEMBER))
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    worker = Worker(tmp_path, script, broker.bootstrap, tmp_path / "state", "w0")
    members: list[subprocess.Popen[str]] = []

    def member(name: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, str(member_script), broker.bootstrap, APP, "other",
                                 str(HOLD_SESSION_MS)], stdout=open(tmp_path / f"{name}.out", "w"),
                                stderr=subprocess.STDOUT, text=True)
        members.append(proc)
        return proc

    try:
        wait_until(lambda: len(worker.owned()) == PARTITIONS, 120, "the worker to own every partition",
                   workers=[worker])
        held = member("held")
        wait_until(lambda: "assigned" in (tmp_path / "held.out").read_text()
                   and _group_state(admin) == ConsumerGroupState.STABLE, 120,
                   "the second member to join and the group to settle", workers=[worker])
        produce(broker.bootstrap, "orders", [(f"k{i}", {"i": i}) for i in range(100)])
        wait_until(lambda: _echoed(broker.bootstrap) >= set(range(100)), 60, "the first records",
                   workers=[worker])

        os.kill(held.pid, signal.SIGSTOP)  # it will not rejoin: the next rebalance waits for its session
        member("joining")  # a new member: the group rebalances
        wait_until(lambda: _group_state(admin) == ConsumerGroupState.PREPARING_REBALANCING, 60,
                   "the group to rebalance", workers=[worker])
        # one wave after the other while the rebalance is held open: the worker learns of it at its next
        # heartbeat, then its JoinGroup waits, and with it (before the fix) the commit after a wave
        for first in (1000, 2000, 3000):
            wave = set(range(first, first + 100))
            produce(broker.bootstrap, "orders", [(f"k{i}", {"i": i}) for i in wave])
            wait_until(lambda: _echoed(broker.bootstrap) >= wave, 40,
                       f"records {first}.. to be processed during the rebalance", workers=[worker],
                       detail=worker.tail)
        assert _group_state(admin) == ConsumerGroupState.PREPARING_REBALANCING, \
            "the rebalance ended before the waves were processed: the test proved nothing"
        assert worker.owned() == {f"orders[{p}]" for p in range(PARTITIONS)}, worker.tail()
    finally:
        # the stopped member goes on, and both leave the group: the rebalance ends, the worker stops
        # cleanly and the group is empty for the next test
        for proc in members:
            os.kill(proc.pid, signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        for proc in members:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        code = worker.stop(timeout=60)
    assert code == 0, worker.tail()
