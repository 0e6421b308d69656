"""Sensor readings in Avro through a Schema Registry: hot readings out as Avro alerts.

    readings (Avro iot.Reading) ── celsius ≥ 30 ──> alerts (Avro iot.Alert, celsius and fahrenheit)

Keys are Avro strings (the sensor id). The registry is $STREAMLET_SCHEMA_REGISTRY_URL: the
embedded one that `streamlet broker --schema-registry` serves, or a real one. Run it across
processes (docs/avro-and-schema-registry.md):

    streamlet broker --script examples/avro_sensors.py --schema-registry   # prints bootstrap + registry
    export STREAMLET_BROKERS=... STREAMLET_SCHEMA_REGISTRY_URL=...
    streamlet run examples/avro_sensors.py &                   # workers (as many as you like)
    python examples/avro_sensors.py send 1000                  # sample readings in (registers readings-value)

The input schema is registered by its producer (`send`); the app registers its outputs' schemas
(`auto_register=True`) — in production, register both from CI and leave auto_register off.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal

import streamlet as sl

READING = {"type": "record", "name": "Reading", "namespace": "iot", "fields": [
    {"name": "sensor", "type": "string"},
    {"name": "celsius", "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 1}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
ALERT = {"type": "record", "name": "Alert", "namespace": "iot", "fields": [
    {"name": "sensor", "type": "string"},
    {"name": "celsius", "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 1}},
    {"name": "fahrenheit", "type": "double"}]}
HOT = Decimal(30)

app = sl.App("avro-sensors")
key = sl.serde.avro("string", auto_register=True)
(app.stream("readings", key_serde=key, value_serde=sl.serde.avro(READING))
    .filter(lambda k, v: v["celsius"] >= HOT)
    .map_values(lambda v: {"sensor": v["sensor"], "celsius": v["celsius"],
                           "fahrenheit": float(v["celsius"]) * 9 / 5 + 32})
    .to("alerts", key_serde=key, value_serde=sl.serde.avro(ALERT, auto_register=True)))


def send(count: int) -> None:
    """Produce ``count`` sample readings to ``readings`` (the broker and registry of the environment)."""
    import datetime as dt

    from confluent_kafka import Producer

    value = sl.serde.avro(READING, auto_register=True)
    kctx = sl.serde.SerializationContext("readings", sl.serde.KEY)
    vctx = sl.serde.SerializationContext("readings", sl.serde.VALUE)
    producer = Producer({"bootstrap.servers": os.environ["STREAMLET_BROKERS"], "partitioner": "murmur2_random"})
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for n in range(count):
        sensor = f"sensor-{n % 10}"
        reading = {"sensor": sensor, "celsius": Decimal(n % 40), "at": start + dt.timedelta(seconds=n)}
        producer.produce("readings", value.serialize(reading, vctx), key.serialize(sensor, kctx))
        producer.poll(0)
    if producer.flush(30):
        raise SystemExit("not every reading was delivered")
    print(f"sent {count} readings")


if __name__ == "__main__":
    if sys.argv[1:2] == ["send"]:
        send(int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
    else:
        app.run()
