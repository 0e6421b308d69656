"""Code generators of the stateless node kinds (filter, map..., split, sink).

Each writes the straight-line code of one node into a :class:`codegen._Writer`
and walks on to its children; see :mod:`streamlet.topology.codegen`.
"""

from __future__ import annotations

from streamlet.topology.codegen import _raw_ser, _Writer, generator
from streamlet.topology.graph import Node


@generator("filter")
def _filter(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.key_used(k, node.fn)
    pred = w.bind(node.fn, "filter")
    neg = "not " if node.params.get("negate") else ""
    w.emit(depth, f"if {neg}{pred}({k}, {v}):")
    if w.subtree_empty(node.name):
        w.emit(depth + 1, "pass")
    w.children(node.name, k, v, depth + 1)


@generator("map_values")
def _map_values(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    fn, out = w.bind(node.fn, "map_values"), w.var("v")
    w.emit(depth, f"{out} = {fn}({v})")
    w.children(node.name, k, out, depth)


@generator("map")
def _map(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.key_used(k, node.fn)
    fn, k2, v2 = w.bind(node.fn, "map"), w.var("k"), w.var("v")
    w.emit(depth, f"{k2}, {v2} = {fn}({k}, {v})")
    w.children(node.name, k2, v2, depth)


@generator("select_key")
def _select_key(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.key_used(k, node.fn)
    fn, k2 = w.bind(node.fn, "select_key"), w.var("k")
    w.emit(depth, f"{k2} = {fn}({k}, {v})")
    w.children(node.name, k2, v, depth)


@generator("flat_map")
def _flat_map(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.key_used(k, node.fn)
    fn, k2, v2 = w.bind(node.fn, "flat_map"), w.var("k"), w.var("v")
    w.emit(depth, f"for {k2}, {v2} in {fn}({k}, {v}):")
    if w.subtree_empty(node.name):
        w.emit(depth + 1, "pass")
    w.children(node.name, k2, v2, depth + 1)


@generator("flat_map_values")
def _flat_map_values(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    fn, v2 = w.bind(node.fn, "flat_map_values"), w.var("v")
    w.emit(depth, f"for {v2} in {fn}({v}):")
    if w.subtree_empty(node.name):
        w.emit(depth + 1, "pass")
    w.children(node.name, k, v2, depth + 1)


@generator("peek", "foreach")
def _peek(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.key_used(k, node.fn)
    fn = w.bind(node.fn, node.kind)
    w.emit(depth, f"{fn}({k}, {v})")
    w.children(node.name, k, v, depth)


@generator("branch")
def _branch(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    w.children(node.name, k, v, depth)


@generator("split")
def _split(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    # Children are branch nodes in declaration order; the default branch (if any) is last.
    topo = w.comp.topology
    branches = [topo.nodes[c] for c in topo.children[node.name]]
    tests = [b for b in branches if b.fn is not None]
    default = next((b for b in branches if b.fn is None), None)
    for i, b in enumerate(tests):
        w.key_used(k, b.fn)
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


@generator("sink")
def _sink(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    from streamlet.topology.compile import reuses_key_bytes, writes_repartition

    p = node.params
    if p.get("partitioner") is not None or writes_repartition(w.comp, node):
        w.closure(node.name, k, v, depth)
        return
    comp = w.comp
    vser, v_none = _raw_ser(p["value_serde"])
    vs = w.bind(vser, "value_ser")
    value = f"{vs}({v})" if v_none else f"None if {v} is None else {vs}({v})"
    if reuses_key_bytes(comp, node):
        key = "kb"
    else:
        w.key_used(k, None)
        kser, k_none = _raw_ser(p["key_serde"])
        ks = w.bind(kser, "key_ser")
        key = f"{ks}({k})" if k_none else f"None if {k} is None else {ks}({k})"
    topic = w.bind(p["topic"], "topic")
    produce = comp.ctx.produce
    raw = getattr(produce, "raw", None)
    ts = w.var("ts")
    w.emit(depth, f"{ts} = {w.ts}")
    w.emit(depth, f"{ts} = {ts} if {ts} > 0 else 0")
    if raw is None:
        fn = w.bind(produce, "produce")
        w.emit(depth, f"{fn}({topic}, {value}, {key}, -1, {ts}, m.headers())")
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
    w.emit(depth + 1, f"{fn}({topic}, {vb}, {key}, -1, None, None, {ts}, m.headers())")
    w.emit(depth, "except BufferError:")
    w.emit(depth + 1, f"{slow}({topic}, {vb}, {key}, -1, {ts}, m.headers())")
    if failed is not None:
        # a record the producer refuses (too large...): a typed error the error policy handles
        w.emit(depth, "except KafkaException as exc:")
        w.emit(depth + 1, f"{w.bind(failed, 'produce_failed')}(exc, {topic}, {vb}, {key}, m.headers())")
    # drop the encoded bytes now: kept alive into the next record, they make the next
    # encode allocate elsewhere (measured: ~150 ns per record with orjson)
    w.emit(depth, f"del {', '.join(encoded)}")
