"""The On-Error Resolve policy on a real worker (DESIGN §7): the ksqlDB CTAS race on an output subject.

A worker writes Avro values to ``out`` with its own schema, registered under ``out-value`` in an HTTP
registry (streamlet's embedded one, served by this test process). Between two runs of the
application another process (this test) registers a new version of ``out-value`` with another
record name, another field order and an added nullable field — what a ``CREATE STREAM ... AS
SELECT`` does — and the broker rejects the next Produce request (``INVALID_RECORD``, as Confluent
Server's schema id validation answers; injected with the embedded broker's fault API, which fails
the next Produce request of any client: so the inputs are written before the fault, and the
worker is restarted rather than kept running). The restarted worker looks its schema id up (its
schema is still registered), is rejected, looks the subject up once, re-maps the generic values to
the registry's schema, re-sends them and follows it for every later record: nothing is lost,
nothing is written twice, two registry requests in all.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

import streamlet as sl
from streamlet.broker.registry import RegistryServer
from tests.integration.kafka_io import produce, read_all, wait_committed
from tests.integration.procs import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PARTITIONS = 2
APP = "ctas-race"
OURS = {"type": "record", "name": "Order", "namespace": "shop",
        "fields": [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"}]}
CTAS = {"type": "record", "name": "KsqlDataSourceSchema", "namespace": "io.confluent.ksql.avro_schemas",
        "fields": [{"name": "amount", "type": "double"}, {"name": "id", "type": "long"},
                   {"name": "note", "type": ["null", "string"], "default": None}]}
RETYPED = {**OURS, "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}

SCRIPT = f"""
import streamlet as sl

app = sl.App({APP!r})
(app.stream("in", value_serde=sl.serde.json())
    .map_values(lambda v: {{"id": v["n"], "amount": v["n"] / 2}})
    .to("out", value_serde=sl.serde.avro({OURS!r})))
"""


def register(client: SchemaRegistryClient, schema: Any) -> int:
    return int(client.register_schema("out-value", Schema(orjson.dumps(schema).decode(), "AVRO")))


def inject_rejection(broker: Any) -> None:
    if broker.kind != "mock":
        pytest.skip("request-error injection is the embedded broker's (rd_kafka_mock_push_request_errors)")
    broker.fault(request_errors={"api": "Produce", "errors": [87]})  # INVALID_RECORD
    wait_until(lambda: "Produce request(s) fail" in broker.log_path.read_text(), 10,
               "the broker to take the fault request")


def start(tmp: Path, broker: Any, registry: str, policy: str = "fail") -> Worker:
    path = tmp / "ctas_app.py"
    path.write_text(textwrap.dedent(SCRIPT))
    return Worker(tmp, path, broker.bootstrap, tmp / "state", APP,
                  env={"STREAMLET_SCHEMA_REGISTRY_URL": registry, "STREAMLET_ON_ERROR": policy})


def outputs(bootstrap: str, registry: str) -> list[tuple[int, dict[str, Any]]]:
    """(schema id, value) of every record on ``out``."""
    serde = sl.serde.avro(registry=registry)
    ctx = sl.serde.SerializationContext("out", sl.serde.VALUE)
    return [(int.from_bytes(m.value()[1:5], "big"), serde.deserialize(m.value(), ctx))
            for m in read_all(bootstrap, "out", PARTITIONS)]


def records(first: int, count: int) -> list[tuple[str, Any]]:
    return [(f"k{n % 7}", {"n": n}) for n in range(first, first + count)]


@pytest.mark.faults
def test_a_ctas_race_on_the_output_subject_is_followed_with_one_lookup_and_nothing_lost(
        tmp_path: Path, broker: Any, registry_kind: str, request: pytest.FixtureRequest) -> None:
    broker.create_topic("in", PARTITIONS)
    broker.create_topic("out", PARTITIONS)
    embedded = RegistryServer().start() if registry_kind == "embedded" else None
    url = embedded.url if embedded is not None else request.getfixturevalue("apicurio").url
    try:
        client = SchemaRegistryClient({"url": url})
        ours = register(client, OURS)
        client.set_compatibility("out-value", "NONE")  # a CTAS replaces the subject's schema
        first = start(tmp_path, broker, url)
        produce(broker.bootstrap, "in", records(0, 500))
        wait_committed(broker.bootstrap, APP, "in", PARTITIONS, 60, [first])
        assert first.stop() == 0
        produce(broker.bootstrap, "in", records(500, 500))
        ctas = register(client, CTAS)
        inject_rejection(broker)
        before = embedded.requests if embedded is not None else 0
        w = start(tmp_path, broker, url)
        wait_committed(broker.bootstrap, APP, "in", PARTITIONS, 60, [w])
        asked = embedded.recent[-(embedded.requests - before):] if embedded is not None else None
        produce(broker.bootstrap, "in", records(1000, 200))
        wait_committed(broker.bootstrap, APP, "in", PARTITIONS, 60, [w])
        got = outputs(broker.bootstrap, url)
    finally:
        if embedded is not None:
            embedded.stop()
    assert w.stop() == 0
    log = w.text()
    if asked is not None:  # the embedded registry counts its requests: a look-up, then the latest
        assert [m for m, _ in asked] == ["POST", "GET"], f"the worker asked the registry {asked}"
        assert asked[1][1].startswith("/subjects/out-value/versions/latest"), asked
    assert len(re.findall(r"sr\.lookup\.ok ", log)) == 1 and "produce.retry.on_error" in log, w.tail()
    assert "schema.conflict.value" in log and "INVALID_RECORD" in log
    ids = sorted(v["id"] for _, v in got)
    assert ids == list(range(1200)), "every input once on out: nothing lost, nothing twice"
    assert {sid for sid, v in got if v["id"] < 500} == {ours}
    # the rejected batch was re-sent with the CTAS id (the fault failed one request: records of the
    # others were accepted with the old id before the worker's commit handled the rejection)
    assert {sid for sid, v in got if 500 <= v["id"] < 1000} == {ours, ctas}
    assert {sid for sid, v in got if v["id"] >= 1000} == {ctas}, "later records follow the CTAS schema"
    assert all(v["note"] is None and v["amount"] == v["id"] / 2 for sid, v in got if sid == ctas)


@pytest.mark.faults
@pytest.mark.parametrize("policy", ["fail", "dead_letter"])
def test_an_incompatible_change_blocks_under_the_error_policy(tmp_path: Path, broker: Any, policy: str) -> None:
    """The registry's latest changes a field's type: no re-map may follow it, the rejected records are
    blocked. Under ``fail`` the worker stops without committing past them; under ``dead_letter``
    they go there and the worker goes on."""
    broker.create_topic("in", PARTITIONS)
    broker.create_topic("out", PARTITIONS)
    if policy == "dead_letter":
        broker.create_topic(f"{APP}-dead-letter", 1)
    with RegistryServer() as registry:
        client = SchemaRegistryClient({"url": registry.url})
        register(client, OURS)
        client.set_compatibility("out-value", "NONE")
        produce(broker.bootstrap, "in", records(0, 300))
        register(client, RETYPED)
        inject_rejection(broker)
        w = start(tmp_path, broker, registry.url, policy)
        if policy == "fail":
            wait_until(lambda: w.proc.poll() is not None, 60, "the worker to stop")
            log = w.text()
            assert w.proc.returncode != 0
            assert "type long -> string at id" in log and "produce.blocked" in log, w.tail()
            got = outputs(broker.bootstrap, registry.url)
            assert len(got) < 300, "the rejected outputs were not re-sent"
            return
        wait_committed(broker.bootstrap, APP, "in", PARTITIONS, 60, [w])
        got = outputs(broker.bootstrap, registry.url)
    assert w.stop() == 0
    dead = read_all(broker.bootstrap, f"{APP}-dead-letter", 1)
    assert dead and "type long -> string at id" in w.text()
    assert len(got) + len(dead) == 300


FOLLOWING = f"""
import streamlet as sl

app = sl.App({APP!r})
policy = sl.serde.SchemaPolicy(schema_check=__import__("os").environ.get("CHECK", "strict"),
                               schema_lookup_backoff=sl.serde.Backoff(initial=0.2, maximum=1.0, give_up_after=60))
(app.stream("in", value_serde=sl.serde.json())
    .map_values(lambda v: {{"id": v["n"], "amount": v["n"] / 2}})
    .to("out", value_serde=sl.serde.avro({OURS!r}, schema_policy=policy)))
"""


def test_a_worker_whose_schema_the_subject_never_had_follows_the_ctas_schema(
        tmp_path: Path, broker: Any, registry_kind: str, request: pytest.FixtureRequest) -> None:
    """On every broker and registry: ``out-value`` holds only the CTAS schema. The worker's 32 tasks hit
    the conflict together (their first records are in one fetch); its first send finds its own schema
    missing there (a schema.conflict), reads the latest once — one lookup for all 32 — and writes
    every value with it."""
    broker.create_topic("in", 32)
    broker.create_topic("out", PARTITIONS)
    embedded = RegistryServer().start() if registry_kind == "embedded" else None
    url = embedded.url if embedded is not None else request.getfixturevalue("apicurio").url
    try:
        ctas = register(SchemaRegistryClient({"url": url}), CTAS)
        produce(broker.bootstrap, "in", [(f"k{n}", {"n": n}) for n in range(300)])
        before = embedded.requests if embedded is not None else 0
        w = start(tmp_path, broker, url)
        wait_committed(broker.bootstrap, APP, "in", 32, 90, [w])
        asked = [p for _, p in embedded.recent[-(embedded.requests - before):]] if embedded is not None else None
        got = outputs(broker.bootstrap, url)
        assert w.stop() == 0
    finally:
        if embedded is not None:
            embedded.stop()
    if asked is not None:  # the embedded registry counts its requests
        assert [p.split("?")[0] for p in asked] == ["/subjects/out-value", "/subjects/out-value/versions/latest"]
    assert sorted(v["id"] for _, v in got) == list(range(300))
    assert {sid for sid, _ in got} == {ctas}
    log = w.text()
    assert len(re.findall(r"sr\.lookup\.ok ", log)) == 1 and "record name shop.Order -> " in log, w.tail()


@pytest.mark.parametrize("check", ["strict", "lenient"])
def test_the_registry_stopped_mid_run(tmp_path: Path, broker: Any, check: str) -> None:
    """The registry is down when a new output topic's schema id is first needed. ``strict``: the worker
    stops at once (nothing committed past the record). ``lenient``: it holds the record, retries with
    backoff, and once the registry is back sends it and everything after: nothing lost."""
    broker.create_topic("in", PARTITIONS)
    broker.create_topic("out", PARTITIONS)
    registry = RegistryServer().start()
    port = int(registry.url.rsplit(":", 1)[1])
    register(SchemaRegistryClient({"url": registry.url}), OURS)
    store = registry.store
    registry.stop()  # down before the worker's first send
    path = tmp_path / "following.py"
    path.write_text(textwrap.dedent(FOLLOWING))
    w = Worker(tmp_path, path, broker.bootstrap, tmp_path / "state", APP,
               env={"STREAMLET_SCHEMA_REGISTRY_URL": registry.url, "CHECK": check})
    produce(broker.bootstrap, "in", records(0, 200))
    if check == "strict":
        wait_until(lambda: w.proc.poll() is not None, 90, "the worker to stop")
        assert w.proc.returncode != 0
        log = w.text()
        assert "sr.unreachable" in log and "could not be reached" in log, w.tail()
        assert not read_all(broker.bootstrap, "out", PARTITIONS)
        return
    wait_until(lambda: "produce.held" in w.text(), 90, "the worker to hold the record", workers=[w])
    with RegistryServer(port=port, store=store) as back:
        wait_committed(broker.bootstrap, APP, "in", PARTITIONS, 90, [w])
        got = outputs(broker.bootstrap, back.url)
    assert w.stop() == 0
    assert sorted(v["id"] for _, v in got) == list(range(200))
    log = w.text()
    assert "lenient: the registry is unreachable; holding the record" in log
    assert "re-sending the held record" in log, w.tail()
