"""Compilers of the stream node kinds (source, filter, map..., process, sink): each builds the
``forward(key, value)`` closure of one node; :mod:`streamlet.topology.kinds` names them."""

from __future__ import annotations

from typing import Any

from streamlet.record import Record, RecordMessage
from streamlet.serde.context import KEY, VALUE, deserializer_for, needs_context, serializer_for
from streamlet.topology.chain import DeserializationFailure, Forward, fan_out
from streamlet.topology.compilation import Compilation, reuses_key_bytes, writes_repartition
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node
from streamlet.topology.origin import input_message, origin_stamper
from streamlet.topology.timestamps import tracks_stream_time, with_timestamp


def source(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Any:
    down = fan_out(downs)
    extract = node.params.get("timestamp_extractor")
    stream_time = tracks_stream_time(comp, node.name)
    if needs_context(node.params["key_serde"]) or needs_context(node.params["value_serde"]):
        decode = _context_decoder(node)
    else:
        kde = node.params["key_serde"].deserialize
        vde = node.params["value_serde"].deserialize

        def decode(m: Any) -> tuple[Any, Any]:
            return kde(m.key()), vde(m.value())

    def source(m: Any) -> None:
        ctx.msg = m
        try:
            k, v = decode(m)
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


def _context_decoder(node: Node) -> Any:
    """Key and value of a message for serdes told the record's topic and headers (``serde.ContextSerde``)."""
    topic = node.params["topic"]
    kde = deserializer_for(node.params["key_serde"], topic, KEY)
    vde = deserializer_for(node.params["value_serde"], topic, VALUE)

    def decode(m: Any) -> tuple[Any, Any]:
        headers = m.headers()
        return kde(m.key(), headers), vde(m.value(), headers)

    return decode


def filter_(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
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


def map_values(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def map_values(k: Any, v: Any) -> None:
        down(k, fn(v))

    return map_values


def map_(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def map_(k: Any, v: Any) -> None:
        k2, v2 = fn(k, v)
        down(k2, v2)

    return map_


def select_key(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def select_key(k: Any, v: Any) -> None:
        down(fn(k, v), v)

    return select_key


def flat_map(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def flat_map(k: Any, v: Any) -> None:
        for k2, v2 in fn(k, v):
            down(k2, v2)

    return flat_map


def flat_map_values(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def flat_map_values(k: Any, v: Any) -> None:
        for v2 in fn(v):
            down(k, v2)

    return flat_map_values


def peek(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def peek(k: Any, v: Any) -> None:
        fn(k, v)
        down(k, v)

    return peek


def pass_through(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    return fan_out(downs)


def split(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
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


def process(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
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


def sink(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    p = node.params
    topic = p["topic"]
    kser = p["key_serde"].serialize
    vser = p["value_serde"].serialize
    partitioner = p.get("partitioner")
    produce = ctx.produce
    same_key_bytes = reuses_key_bytes(comp, node)
    if needs_context(p["key_serde"]) or needs_context(p["value_serde"]):
        return _sink_with_context(node, ctx, comp, same_key_bytes)

    if partitioner is not None:
        count = ctx.partitions.get(topic)

        keep_headers = p.get("headers", True)  # False: an internal topic's records carry none

        def sink_partitioned(k: Any, v: Any) -> None:
            m = ctx.msg
            n = count or ctx.partitions[topic]
            part = partitioner(k, v, n)
            ts = m.timestamp()[1]
            produce(topic, vser(v), kser(k), part, ts if ts > 0 else 0, m.headers() if keep_headers else None)

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


def _sink_with_context(node: Node, ctx: TaskContext, comp: Compilation, same_key_bytes: bool) -> Forward:
    """A sink whose serdes are told the output topic and the headers the record is written with
    (the same list: a header a serializer adds is written too)."""
    p = node.params
    topic, partitioner, produce = p["topic"], p.get("partitioner"), ctx.produce
    kser = serializer_for(p["key_serde"], topic, KEY)
    vser = serializer_for(p["value_serde"], topic, VALUE)
    stamp = origin_stamper(ctx) if writes_repartition(comp, node) else None
    count = ctx.partitions.get(topic)

    def sink(k: Any, v: Any) -> None:
        m = ctx.msg
        headers = m.headers() if stamp is None else stamp()
        kb = m.key() if same_key_bytes else kser(k, headers)
        vb = vser(v, headers)
        part = -1 if partitioner is None else partitioner(k, v, count or ctx.partitions[topic])
        ts = m.timestamp()[1]
        produce(topic, vb, kb, part, ts if ts > 0 else 0, headers)

    return sink
