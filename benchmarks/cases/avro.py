"""Case ``avro``: the ``stateless`` pipeline with Avro values in and out through a Schema Registry
(DESIGN §6, issue 14 item 4).

Data: the ``stateless`` records (``order``, ``user``, ``amount``, ``currency``,
``ts``, ``region``) as Avro values of record ``bench.Order`` in the Confluent
wire format (magic byte, schema id, Avro binary: ~34 bytes), over ``keys``
string keys (plain UTF-8, as in ``stateless``) in a ``partitions``-partition
topic. The logic: keep records whose ``amount`` is at least 250 (~75%), set
``flag = true``, write them as ``bench.FlaggedOrder`` (the same fields and
``flag``) to an output topic with the input key.

The registry is streamlet's embedded one over HTTP (``streamlet broker
--schema-registry``; with ``--broker kafka`` the same server started in the
runner's process), shared by every side — each side runs in its own process,
so a ``mock://`` registry could not be shared. Before any side runs, the
input schema is registered under ``bench-input-value`` and the output schema
under each output topic's ``<topic>-value``; no side registers anything
(auto-registration off), each looks its ids up once and caches them. Sides,
each in a fresh process:

* ``raw-loop`` (the baseline) — the ``stateless`` raw loop with
  confluent-kafka's own ``AvroDeserializer`` (writer schema by id, from the
  registry) and ``AvroSerializer(registry, FlaggedOrder,
  {"auto.register.schemas": False})`` called with a ``SerializationContext``
  built once per topic: ``consume(10000)``, the logic inline, ``produce``
  with errors-only delivery reports, flush + commit about every second;
* ``raw-loop, fastavro`` (a reference) — the same loop with the codec
  written by hand: ids cached, fastavro's schemaless reader and writer,
  the 5-byte header prepended; the practical limit of the codec;
* ``streamlet`` — ``app.stream(input, value_serde=sl.serde.avro(ORDER))
  .filter(...).map_values(...).to(out, value_serde=sl.serde.avro(FLAGGED))``
  under ``app.run()``.

Timed as ``stateless``: from partition assignment until every input record
is processed and every output acknowledged. The output of every side's first
run is read back and decoded: the expected count, every record written with
the output schema's id, every value flagged and passing the filter.

On ``--broker kafka`` there is no Kafka Streams side: its benchmark
application (``tools/kstreams-bench``) has no Avro twin of this case.
"""

from __future__ import annotations

import io
import struct
import time
from typing import Any, Iterator

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import Window, read_topic, run_app_until
from benchmarks.cases._filter import (INPUT, RAW_LOOP, THRESHOLD, filter_result, measure_filter, orders,
    output_topics, plain, raw_loop)
from benchmarks.harness import BenchError, check_fits, err_console, load, open_broker, side_entry

BASELINE = RAW_LOOP
_FIELDS = [{"name": "order", "type": "long"}, {"name": "user", "type": "string"},
           {"name": "amount", "type": "int"}, {"name": "currency", "type": "string"},
           {"name": "ts", "type": "long"}, {"name": "region", "type": "string"}]
ORDER = {"type": "record", "name": "Order", "namespace": "bench", "fields": _FIELDS}
FLAGGED = {"type": "record", "name": "FlaggedOrder", "namespace": "bench",
           "fields": _FIELDS + [{"name": "flag", "type": "boolean"}]}
_HEADER = struct.Struct(">bI")

#: side → label; ``raw`` is the contract's baseline
SIDES = {"raw": "raw-loop (confluent-kafka Avro serdes)", "raw_fastavro": "raw-loop, fastavro (reference)",
         "streamlet": "streamlet"}


def _schema_text(schema: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(schema).decode()


def register(url: str, subject: str, schema: dict[str, Any]) -> int:
    """Register ``schema`` under ``subject`` of the registry at ``url``; its id."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient({"url": url})
    return int(client.register_schema(subject, Schema(_schema_text(schema), "AVRO")))


def make_records(records: int, keys: int, schema_id: int,
                 seed: int = 42) -> tuple[Iterator[tuple[bytes, bytes]], list[int]]:
    """``(key, Avro value)`` byte pairs and a one-item list that ends up holding the expected output count."""
    from fastavro import parse_schema, schemaless_writer

    parsed = parse_schema(ORDER)
    header = _HEADER.pack(0, schema_id)
    expected = [0]

    def gen() -> Iterator[tuple[bytes, bytes]]:
        for key, value in orders(records, keys, expected, seed):
            out = io.BytesIO()
            out.write(header)
            schemaless_writer(out, parsed, value)
            yield key, out.getvalue()

    return gen(), expected


#: bytes of a key + value, rounded up (input: 10 + ~34; the output adds one byte for the flag)
RECORD_BYTES = 10 + 40


def check_output(bootstrap: str, topic: str, partitions: int, schema_id: int, expected: int) -> None:
    """Read ``topic`` back: ``expected`` records, each with ``schema_id``, flagged and passing the filter."""
    from fastavro import parse_schema, schemaless_reader

    parsed = parse_schema(FLAGGED)
    header = _HEADER.pack(0, schema_id)
    rows = read_topic(bootstrap, topic, partitions)
    if len(rows) != expected:
        raise BenchError(f"{topic}: {len(rows)} records, expected {expected}")
    for key, value in rows:
        if value[:5] != header:
            raise BenchError(f"{topic}: a record starts {value[:5]!r}, not the output schema id {schema_id}")
        buf = io.BytesIO(value)
        buf.seek(5)
        v = schemaless_reader(buf, parsed, None)
        if v["flag"] is not True or v["amount"] < THRESHOLD or key != v["user"].encode():
            raise BenchError(f"{topic}: a wrong record {key!r} {v!r}")


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    check_fits(opts.records, opts.partitions, RECORD_BYTES, "input", opts.broker)
    sides = dict(SIDES)
    topics = output_topics(sides, opts.repeat, opts.partitions)
    with open_broker(topics, opts.broker, schema_registry=True) as broker:
        url = broker.registry_url
        assert url is not None
        in_id = register(url, f"{INPUT}-value", ORDER)
        out_ids = {out: register(url, f"{out}-value", FLAGGED) for out in topics if out != INPUT}
        data, expected = make_records(opts.records, opts.keys, in_id)
        load_s = load(broker.bootstrap, INPUT, data, opts.records)
        broker.check_complete(INPUT, opts.records)
        err_console.print(f"loaded {opts.records:,} Avro records in {load_s:.1f} s; "
                          f"{expected[0]:,} pass the filter; registry {url}")

        def check(out: str, r: int) -> None:
            if r == 0:
                check_output(broker.bootstrap, out, opts.partitions, out_ids[out], expected[0])

        runs = measure_filter("avro", opts, sides, broker, expected[0], check, width=40, registry=url)
    raw, fast, sl = (max(runs[side], key=lambda s: s.rps) for side in ("raw", "raw_fastavro", "streamlet"))
    rows = [("registry", f"embedded (HTTP), {'in the runner' if opts.broker == 'kafka' else 'streamlet broker'}"),
            ("raw-loop, fastavro", f"{fast.rps:,.0f} rec/s ({fast.rps / raw.rps:.2f}× raw-loop)"),
            ("streamlet / raw-loop, fastavro", f"{sl.rps / fast.rps:.2f}×")]
    return filter_result("avro", opts, t_start, sides, runs, expected[0], load_s, rows,
                         {"fastavro_loop_rps": round(fast.rps, 1)})


# -- the sides (each runs in its own process through benchmarks/side.py) ----------------
@side_entry
def side_raw(p: dict[str, Any]) -> dict[str, Any]:
    """The baseline: the raw loop with confluent-kafka's AvroDeserializer / AvroSerializer."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = SchemaRegistryClient({"url": p["registry"]})
    deserializer = AvroDeserializer(client)
    serializer = AvroSerializer(client, _schema_text(FLAGGED), conf={"auto.register.schemas": False})
    in_ctx = SerializationContext(p["input"], MessageField.VALUE)
    out_ctx = SerializationContext(p["output"], MessageField.VALUE)
    return raw_loop(p, plain, lambda data: deserializer(data, in_ctx), lambda v: serializer(v, out_ctx))


@side_entry
def side_raw_fastavro(p: dict[str, Any]) -> dict[str, Any]:
    """A reference: the raw loop with the codec by hand (fastavro schemaless, ids cached)."""
    import orjson
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    client = SchemaRegistryClient({"url": p["registry"]})
    out_id = client.lookup_schema(f"{p['output']}-value", Schema(_schema_text(FLAGGED), "AVRO")).schema_id
    header = _HEADER.pack(0, int(out_id))
    writer = parse_schema(FLAGGED)
    readers: dict[int, Any] = {}
    BytesIO = io.BytesIO

    def decode(data: bytes) -> Any:
        sid = int.from_bytes(data[1:5], "big")
        schema = readers.get(sid)
        if schema is None:
            schema = readers[sid] = parse_schema(orjson.loads(client.get_schema(sid).schema_str))
        buf = BytesIO(data)
        buf.seek(5)
        return schemaless_reader(buf, schema, None)

    def encode(v: Any) -> bytes:
        buf = BytesIO()
        buf.write(header)
        schemaless_writer(buf, writer, v)
        return buf.getvalue()

    return raw_loop(p, plain, decode, encode)


@side_entry
def side_streamlet(p: dict[str, Any]) -> dict[str, Any]:
    """The same logic as a streamlet topology with ``sl.serde.avro`` values, run by ``app.run()``."""
    import streamlet as sl

    threshold = p["threshold"]

    def add_flag(v: dict[str, Any]) -> dict[str, Any]:
        v["flag"] = True  # the freshly decoded value of a stream that does not branch
        return v

    app = sl.App(p["group"], brokers=p["bootstrap"], config=p.get("config") or None)
    (app.stream(p["input"], value_serde=sl.serde.avro(ORDER, registry=p["registry"]))
        .filter(lambda k, v: v["amount"] >= threshold)
        .map_values(add_flag)
        .to(p["output"], value_serde=sl.serde.avro(FLAGGED, registry=p["registry"])))
    return run_app_until(app, p["records"], Window(), finish_in_runner=False)
