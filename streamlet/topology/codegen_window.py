"""Code generator of the time-windowed aggregation in a record's chain (tumbling windows).

For ``stream.group_by_key().windowed_by(sl.Tumbling(...)).count()`` the record
loop calls the step's record function (``tumbling_record`` in
:mod:`streamlet.topology.window_aggregate`) with the parts of the record it
already holds — the key, its bytes, the timestamp, the input message — instead
of the closure, which would read them back from ``ctx.msg``: no message
stamped with the extracted timestamp is made for a record that only updates
its window (the step makes one when it hands a message on: a late record,
an emission, an emitted change). Any other windowed aggregation (hopping,
behind a repartition topic, several records per input record) is called
through its closure.
"""

from __future__ import annotations

from streamlet.topology.codegen import _Writer
from streamlet.topology.graph import Node


def window_aggregate(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    """A tumbling window aggregation on a single-output path: its record function called directly."""
    comp = w.comp
    record = getattr(comp.forward_of(node.name), "record", None)
    if record is None or not comp.single_output_path(node.name) or w.source is None:
        w.closure(node.name, k, v, depth)
        return
    w.key_used(k)
    key_serde = comp.topology.stores[node.params["store"]].key_serde
    # the input's key bytes are the store key when no step before changed the key and the source's key
    # serde writes what the store's would
    if all(comp.same_key_bytes(parent, key_serde) for parent in node.parents):
        kb = "kb"
    else:
        kb = f"{w.bind(key_serde.serialize, 'window_kser')}({k})"
    stamped = w.source.params.get("timestamp_extractor") is not None
    fn = w.bind(record, f"window_{node.name}")
    w.emit(depth, f"{fn}({k}, {v}, {kb}, {w.ts}, m, m.offset(), 0, {stamped})")
