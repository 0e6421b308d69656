"""Avro through the embedded Schema Registry across processes: `streamlet broker --schema-registry`
serves the registry (and, on the mock, the broker), a producer process writes Avro records that it
registers, two `streamlet run` workers read them and write Avro outputs through the same HTTP
registry, and the test reads them back with serde.avro — record by record.

Runs with `--broker mock|tansu|kafka|...`: on Tansu and Kafka the `streamlet broker` process serves
only the registry. With `--registry apicurio|all` the same pipeline also runs against Apicurio
Registry's Confluent-compatible API (an independent registry, built from Maven Central), the
`streamlet broker` process then serving only the mock broker, if any.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

import streamlet as sl
from streamlet.testing.kafka import log_tail
from tests.integration.kafka_io import read_all, wait_committed
from tests.integration.procs import Worker, terminate, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PARTITIONS = 4
RECORDS = 2_000
APP = "avro-workers"

READING = {"type": "record", "name": "Reading", "namespace": "iot", "fields": [
    {"name": "n", "type": "long"}, {"name": "sensor", "type": "string"},
    {"name": "celsius", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}}]}
ALERT = {"type": "record", "name": "Alert", "namespace": "iot", "fields": [
    {"name": "n", "type": "long"}, {"name": "sensor", "type": "string"},
    {"name": "fahrenheit", "type": "double"}, {"name": "pid", "type": "int"}]}

SCRIPT = f"""
import os
import streamlet as sl

READING = {READING!r}
ALERT = {ALERT!r}
PID = os.getpid()

app = sl.App({APP!r})
key = sl.serde.avro("string", auto_register=True)   # the registry: $STREAMLET_SCHEMA_REGISTRY_URL
(app.stream("readings", key_serde=key, value_serde=sl.serde.avro(READING))
    .filter(lambda k, v: v["n"] % 2 == 0)
    .map_values(lambda v: {{"n": v["n"], "sensor": v["sensor"], "fahrenheit": float(v["celsius"]) * 9 / 5 + 32,
                           "pid": PID}})
    .to("alerts", key_serde=key, value_serde=sl.serde.avro(ALERT, auto_register=True)))
"""

PRODUCER = f"""
import sys
from decimal import Decimal
from confluent_kafka import Producer
import streamlet as sl

bootstrap, registry, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
key = sl.serde.avro("string", registry=registry, auto_register=True)
value = sl.serde.avro({READING!r}, registry=registry, auto_register=True)
kctx = sl.serde.SerializationContext("readings", sl.serde.KEY)
vctx = sl.serde.SerializationContext("readings", sl.serde.VALUE)
p = Producer({{"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"}})
for n in range(count):
    sensor = f"s{{n % 40}}"
    p.produce("readings", value.serialize({{"n": n, "sensor": sensor, "celsius": Decimal(n % 50) / 4}}, vctx),
              key.serialize(sensor, kctx))
    p.poll(0)
assert p.flush(60) == 0
print("produced", count)
"""


class RegistryBroker:
    """`streamlet broker --schema-registry`: its bootstrap line, then its registry line (without
    ``schema_registry``: `streamlet broker` and its bootstrap line alone; ``registry`` is then "")."""

    def __init__(self, tmp: Path, schema_registry: bool = True) -> None:
        self.log_path = tmp / "registry-broker.log"
        self.log = open(self.log_path, "w")
        args = [sys.executable, "-m", "streamlet", "broker", "--topic", f"readings:{PARTITIONS}",
                "--topic", f"alerts:{PARTITIONS}", *(["--schema-registry"] if schema_registry else [])]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        out = self.proc.stdout
        assert out is not None
        lines = [out.readline() for _ in range(2 if schema_registry else 1)]
        expected = ["bootstrap: ", "schema-registry: http://127.0.0.1:"][:len(lines)]
        if not all(line.startswith(start) for line, start in zip(lines, expected)):
            self.stop()
            raise AssertionError(f"unexpected first lines {lines!r}\n{log_tail(self.log_path)}")
        self.bootstrap = lines[0].split(": ", 1)[1].strip()
        self.registry = lines[1].split(": ", 1)[1].strip() if schema_registry else ""

    def stop(self) -> None:
        terminate(self.proc)
        self.log.close()


def test_a_producer_and_two_workers_use_avro_through_the_registry(
        tmp_path: Path, broker_kind: str, registry_kind: str, request: pytest.FixtureRequest) -> None:
    registry = request.getfixturevalue("apicurio").url if registry_kind == "apicurio" else ""
    if broker_kind != "mock" and registry:
        served = None  # neither the mock broker nor the embedded registry is needed
    else:
        served = RegistryBroker(tmp_path, schema_registry=not registry)
        registry = registry or served.registry
    try:
        if broker_kind == "mock":
            assert served is not None
            bootstrap = served.bootstrap
        else:
            broker = request.getfixturevalue("broker")
            bootstrap = broker.bootstrap
            for topic in ("readings", "alerts"):
                broker.create_topic(topic, PARTITIONS)
        run_pipeline(tmp_path, bootstrap, registry)
    finally:
        if served is not None:
            served.stop()
    if served is not None:
        assert served.proc.returncode == 0, log_tail(served.log_path)


def run_pipeline(tmp: Path, bootstrap: str, registry: str) -> None:
    script = tmp / "avro_app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {"STREAMLET_SCHEMA_REGISTRY_URL": registry}
    workers = [Worker(tmp, script, bootstrap, tmp / f"state{i}", f"w{i}", env=env) for i in (1, 2)]

    def split() -> bool:
        owned = [w.owned() for w in workers]
        return all(owned) and not owned[0] & owned[1] and len(owned[0] | owned[1]) == PARTITIONS

    wait_until(split, 90, "both workers to own partitions", workers=workers, interval=0.2)
    producer = tmp / "producer.py"
    producer.write_text(textwrap.dedent(PRODUCER))
    done = subprocess.run([sys.executable, str(producer), bootstrap, registry, str(RECORDS)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "produced" in done.stdout, done.stderr[-3000:]
    ends = wait_committed(bootstrap, APP, "readings", PARTITIONS, 90, workers)
    assert sum(ends.values()) == RECORDS
    assert [w.stop() for w in workers] == [0, 0]

    key = sl.serde.avro("string", registry=registry)
    value = sl.serde.avro(ALERT, registry=registry)
    kctx = sl.serde.SerializationContext("alerts", sl.serde.KEY)
    vctx = sl.serde.SerializationContext("alerts", sl.serde.VALUE)
    got: dict[int, Any] = {}
    for m in read_all(bootstrap, "alerts", PARTITIONS):
        v = value.deserialize(m.value(), vctx)
        assert key.deserialize(m.key(), kctx) == v["sensor"] == f"s{v['n'] % 40}"
        got[v["n"]] = v
    assert sorted(got) == list(range(0, RECORDS, 2))
    assert got[10]["fahrenheit"] == pytest.approx(10 / 4 * 9 / 5 + 32)
    assert {v["pid"] for v in got.values()} == {w.pid for w in workers}
    client = SchemaRegistryClient({"url": registry})
    assert sorted(client.get_subjects()) == ["alerts-key", "alerts-value", "readings-key", "readings-value"]


def test_the_avro_sensors_example_across_processes(tmp_path: Path, broker_kind: str) -> None:
    """docs/avro-and-schema-registry.md's flow: `streamlet broker --script examples/avro_sensors.py
    --schema-registry`, a `streamlet run` worker, `python examples/avro_sensors.py send 200`."""
    if broker_kind != "mock":
        pytest.skip("the documented flow hosts the embedded broker (test above: every broker kind)")
    example = Path(__file__).resolve().parents[2] / "examples" / "avro_sensors.py"
    log = tmp_path / "broker.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "streamlet", "broker", "--script", str(example),
                                 "--schema-registry"], stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        bootstrap = proc.stdout.readline().split(": ", 1)[1].strip()  # type: ignore[union-attr]
        registry = proc.stdout.readline().split(": ", 1)[1].strip()  # type: ignore[union-attr]
        env = {"STREAMLET_SCHEMA_REGISTRY_URL": registry}
        worker = Worker(tmp_path, example, bootstrap, tmp_path / "state", "sensors", env=env)
        wait_until(lambda: len(worker.owned()) == 4, 60, "the worker to own the 4 partitions", workers=[worker])
        sent = subprocess.run([sys.executable, str(example), "send", "200"], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "STREAMLET_BROKERS": bootstrap, **env})
        assert sent.returncode == 0 and "sent 200 readings" in sent.stdout, sent.stderr[-3000:]
        wait_committed(bootstrap, "avro-sensors", "readings", 4, 60, [worker])
        assert worker.stop() == 0
        value = sl.serde.avro(registry=registry)
        ctx = sl.serde.SerializationContext("alerts", sl.serde.VALUE)
        alerts = [value.deserialize(m.value(), ctx) for m in read_all(bootstrap, "alerts", 4)]
    finally:
        terminate(proc)
    assert len(alerts) == 50 and all(a["celsius"] >= 30 for a in alerts), log_tail(log)
    assert sorted({a["sensor"] for a in alerts}) == [f"sensor-{i}" for i in range(10)]
