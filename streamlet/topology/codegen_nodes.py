"""Code generators of the stateless node kinds (filter, map..., split, sink).

Each writes the straight-line code of one node into a :class:`codegen._Writer`
and walks on to its children; see :mod:`streamlet.topology.codegen`.
"""

from __future__ import annotations

from streamlet.serde.context import KEY, VALUE
from streamlet.topology.codegen import _serialize_expr, _Writer
from streamlet.topology.compilation import writes_repartition
from streamlet.topology.graph import Node
from streamlet.topology.origin import first_origin_stamper


def filter_(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.key_used(k)
    pred = w.bind(node.fn, "filter")
    neg = "not " if node.params.get("negate") else ""
    w.emit(depth, f"if {neg}{pred}({k}, {v}):")
    if w.subtree_empty(node.name):
        w.emit(depth + 1, "pass")
    w.children(node.name, k, v, depth + 1)


def map_values(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    fn, out = w.bind(node.fn, "map_values"), w.var("v")
    w.emit(depth, f"{out} = {fn}({v})")
    w.children(node.name, k, out, depth)


def map_(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.key_used(k)
    fn, k2, v2 = w.bind(node.fn, "map"), w.var("k"), w.var("v")
    w.emit(depth, f"{k2}, {v2} = {fn}({k}, {v})")
    w.children(node.name, k2, v2, depth)


def select_key(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.key_used(k)
    fn, k2 = w.bind(node.fn, "select_key"), w.var("k")
    w.emit(depth, f"{k2} = {fn}({k}, {v})")
    w.children(node.name, k2, v, depth)


def flat_map(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.key_used(k)
    fn, k2, v2 = w.bind(node.fn, "flat_map"), w.var("k"), w.var("v")
    w.emit(depth, f"for {k2}, {v2} in {fn}({k}, {v}):")
    if w.subtree_empty(node.name):
        w.emit(depth + 1, "pass")
    w.children(node.name, k2, v2, depth + 1)


def flat_map_values(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    fn, v2 = w.bind(node.fn, "flat_map_values"), w.var("v")
    w.emit(depth, f"for {v2} in {fn}({v}):")
    if w.subtree_empty(node.name):
        w.emit(depth + 1, "pass")
    w.children(node.name, k, v2, depth + 1)


def peek(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.key_used(k)
    fn = w.bind(node.fn, node.kind)
    w.emit(depth, f"{fn}({k}, {v})")
    w.children(node.name, k, v, depth)


def branch(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.children(node.name, k, v, depth)


def split(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    # Children are branch nodes in declaration order; the default branch (if any) is last.
    topo = w.comp.topology
    branches = [topo.nodes[c] for c in topo.children[node.name]]
    tests = [b for b in branches if b.fn is not None]
    default = next((b for b in branches if b.fn is None), None)
    for i, b in enumerate(tests):
        w.key_used(k)
        pred = w.bind(b.fn, "branch")
        w.emit(depth, f"{'if' if i == 0 else 'elif'} {pred}({k}, {v}):")
        w.emit(depth + 1, "pass")
        w.node(b.name, k, v, depth + 1)
    if default is not None:
        if tests:
            w.emit(depth, "else:")
            w.emit(depth + 1, "pass")
            w.node(default.name, k, v, depth + 1)
        else:
            w.node(default.name, k, v, depth)


def group_by(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.key_used(k)
    fn, gk = w.bind(node.fn, "group_by"), w.var("k")
    w.emit(depth, f"{gk} = {fn}({k}, {v})")
    w.emit(depth, f"if {gk} is not None:  # a None group key drops the record")
    if w.subtree_empty(node.name):
        w.emit(depth + 1, "pass")
    w.children(node.name, gk, v, depth + 1)


def sink(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    """``to(topic)``; a repartition topic's records also get their origin header (see origin.py)
    when each input record makes at most one of them."""
    p = node.params
    comp = w.comp
    repartition = writes_repartition(comp, node)
    if p.get("partitioner") is not None or (repartition and not comp.single_output_path(node.name)):
        w.closure(node.name, k, v, depth)
        return
    headers = "m.headers()"
    if repartition:
        assert w.source is not None
        stamp = first_origin_stamper(comp.ctx.partition, w.source.params["topic"])
        headers = w.var("headers")
        w.emit(depth, f"{headers} = {w.bind(stamp, 'origin_stamp')}(m.offset(), m.headers())")
    value = _serialize_expr(w, p["value_serde"], v, "value_ser", p["topic"], VALUE, headers)
    if comp.same_key_bytes(node.name, p["key_serde"]):
        key = "kb"
    else:
        w.key_used(k)
        key = _serialize_expr(w, p["key_serde"], k, "key_ser", p["topic"], KEY, headers)
    topic = w.bind(p["topic"], "topic")
    produce = comp.ctx.produce
    raw = getattr(produce, "raw", None)
    ts = w.var("ts")
    w.emit(depth, f"{ts} = {w.ts}")
    w.emit(depth, f"{ts} = {ts} if {ts} > 0 else 0")
    if raw is None:
        fn = w.bind(produce, "produce")
        w.emit(depth, f"{fn}({topic}, {value}, {key}, -1, {ts}, {headers})")
        return
    # the client's own produce(): positional arguments (keywords cost a dict per call);
    # only when its queue is full does the waiting wrapper take over
    fn, slow = w.bind(raw, "produce_raw"), w.bind(produce, "produce")
    failed = getattr(produce, "failed", None)
    vb = w.var("vb")
    w.emit(depth, f"{vb} = {value}")
    encoded = [vb]
    if key != "kb":
        kb2 = w.var("kb")
        w.emit(depth, f"{kb2} = {key}")
        key = kb2
        encoded.append(kb2)
    w.emit(depth, "try:")
    w.emit(depth + 1, f"{fn}({topic}, {vb}, {key}, -1, None, None, {ts}, {headers})")
    w.emit(depth, "except BufferError:")
    w.emit(depth + 1, f"{slow}({topic}, {vb}, {key}, -1, {ts}, {headers})")
    if failed is not None:
        # a record the producer refuses (too large...): a typed error the error policy handles
        w.emit(depth, "except KafkaException as exc:")
        w.emit(depth + 1, f"{w.bind(failed, 'produce_failed')}(exc, {topic}, {vb}, {key}, {headers})")
    # drop the encoded bytes now: kept alive into the next record, they make the next
    # encode allocate elsewhere (measured: ~150 ns per record with orjson)
    w.emit(depth, f"del {', '.join(encoded)}")
