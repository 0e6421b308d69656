"""Compilers of the stateless node kinds (source, filter, map..., sink)."""

from __future__ import annotations

from typing import Any

from streamlet.record import Record, RecordMessage
from streamlet.topology.compile import (
    Compilation,
    DeserializationFailure,
    Forward,
    compiler,
    fan_out,
    reuses_key_bytes,
    writes_repartition,
)
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node
from streamlet.topology.origin import input_message, origin_stamper
from streamlet.topology.timestamps import tracks_stream_time, with_timestamp


@compiler("source")
def _source(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Any:
    kde = node.params["key_serde"].deserialize
    vde = node.params["value_serde"].deserialize
    down = fan_out(downs)
    extract = node.params.get("timestamp_extractor")
    stream_time = tracks_stream_time(comp, node.name)

    def source(m: Any) -> None:
        ctx.msg = m
        try:
            k = kde(m.key())
            v = vde(m.value())
        except Exception as exc:
            raise DeserializationFailure(exc) from exc
        if extract is not None or stream_time:
            ts = m.timestamp()[1]
            if extract is not None:
                ts = extract(k, v, ts)
                ctx.msg = with_timestamp(m, ts)
            if ts > ctx.stream_time:
                ctx.stream_time = ts
        down(k, v)

    return source


@compiler("filter")
def _filter(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    pred, down = node.fn, fan_out(downs)
    if node.params.get("negate"):
        def filter_not(k: Any, v: Any) -> None:
            if not pred(k, v):
                down(k, v)

        return filter_not

    def filter_(k: Any, v: Any) -> None:
        if pred(k, v):
            down(k, v)

    return filter_


@compiler("map_values")
def _map_values(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def map_values(k: Any, v: Any) -> None:
        down(k, fn(v))

    return map_values


@compiler("map")
def _map(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def map_(k: Any, v: Any) -> None:
        k2, v2 = fn(k, v)
        down(k2, v2)

    return map_


@compiler("select_key")
def _select_key(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def select_key(k: Any, v: Any) -> None:
        down(fn(k, v), v)

    return select_key


@compiler("flat_map")
def _flat_map(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def flat_map(k: Any, v: Any) -> None:
        for k2, v2 in fn(k, v):
            down(k2, v2)

    return flat_map


@compiler("flat_map_values")
def _flat_map_values(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def flat_map_values(k: Any, v: Any) -> None:
        for v2 in fn(v):
            down(k, v2)

    return flat_map_values


@compiler("peek", "foreach")
def _peek(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def peek(k: Any, v: Any) -> None:
        fn(k, v)
        down(k, v)

    return peek


@compiler("merge", "branch")
def _pass(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    return fan_out(downs)


@compiler("split")
def _split(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    # Children are branch nodes in declaration order; the default branch (if any) is last.
    branches = [comp.topology.nodes[c] for c in comp.topology.children[node.name]]
    pairs = tuple((b.fn, d) for b, d in zip(branches, downs) if b.fn is not None)
    default = next((d for b, d in zip(branches, downs) if b.fn is None), None)

    def split(k: Any, v: Any) -> None:
        for pred, down in pairs:
            if pred(k, v):
                down(k, v)
                return
        if default is not None:
            default(k, v)

    return split


@compiler("process")
def _process(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def forward(r: Record, m: Any) -> None:
        ctx.msg = RecordMessage(r.topic, r.partition, r.offset, r.timestamp, r.headers,
                                parent=input_message(m))
        try:
            down(r.key, r.value)
        finally:
            ctx.msg = m

    if isinstance(fn, type):  # a Processor class (Kafka Streams' ProcessorSupplier): one per task
        from streamlet.topology.punctuation import ProcessorContext

        processor = fn()
        init, close = getattr(processor, "init", None), getattr(processor, "close", None)
        if close is not None:
            ctx.closers.append(close)
        if init is not None:
            init(ProcessorContext(ctx, forward, ctx.clock))
        fn = processor.process

    def process(k: Any, v: Any) -> None:
        m = ctx.msg
        out = fn(Record(k, v, m.timestamp()[1], m.topic(), m.partition(), m.offset(), m.headers()))
        if out is None:
            return
        if isinstance(out, Record):
            forward(out, m)
            return
        for r in out:
            if not isinstance(r, Record):
                raise TypeError(
                    f"process() callback must return None, a Record or Records, got {type(r).__name__}"
                )
            forward(r, m)

    return process


@compiler("sink")
def _sink(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    p = node.params
    topic = p["topic"]
    kser = p["key_serde"].serialize
    vser = p["value_serde"].serialize
    partitioner = p.get("partitioner")
    produce = ctx.produce
    same_key_bytes = reuses_key_bytes(comp, node)

    if partitioner is not None:
        count = ctx.partitions.get(topic)

        def sink_partitioned(k: Any, v: Any) -> None:
            m = ctx.msg
            n = count or ctx.partitions[topic]
            part = partitioner(k, v, n)
            ts = m.timestamp()[1]
            produce(topic, vser(v), kser(k), part, ts if ts > 0 else 0, m.headers())

        return sink_partitioned

    if writes_repartition(comp, node):
        stamp = origin_stamper(ctx)

        def sink_repartition(k: Any, v: Any) -> None:
            m = ctx.msg
            ts = m.timestamp()[1]
            kb = m.key() if same_key_bytes else kser(k)
            produce(topic, vser(v), kb, -1, ts if ts > 0 else 0, stamp())

        return sink_repartition

    if same_key_bytes:
        def sink_same_key(k: Any, v: Any) -> None:
            m = ctx.msg
            ts = m.timestamp()[1]
            produce(topic, vser(v), m.key(), -1, ts if ts > 0 else 0, m.headers())

        return sink_same_key

    def sink(k: Any, v: Any) -> None:
        m = ctx.msg
        ts = m.timestamp()[1]
        produce(topic, vser(v), kser(k), -1, ts if ts > 0 else 0, m.headers())

    return sink
