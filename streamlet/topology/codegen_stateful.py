"""Code generators of the stateful kinds that sit in a record's chain: aggregation and join.

For ``stream.group_by_key().aggregate(n=sl.agg.count(), ...)`` the record loop
updates the cached row itself instead of calling the aggregation's closure:
the same steps as ``aggregate`` in :mod:`streamlet.topology.aggregate`,
specialised for a chain in which every input record reaches the aggregation
at most once (no ``flat_map`` on the way), so the per-input sequence of the
replay mark is always 0 and a record applies exactly when its offset is above
the row's. A stream–table join looks the table up inline and the chain after
it (``to``, ``map_values`` ...) is generated too.
"""

from __future__ import annotations

from typing import Any

from streamlet.agg.aggregation import inline_update
from streamlet.state.cache import MISSING
from streamlet.state.row import MARK, REPARTITIONED_TS, SEQ, STATE, TS
from streamlet.topology.aggregate import forward_at
from streamlet.topology.codegen import _Writer
from streamlet.topology.graph import Node
from streamlet.topology.origin import read_origin
from streamlet.topology.stateful import getter_of

#: a column's state kept (maybe updated in place) rather than replaced
KEEP = object()


def aggregate(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    """A stream aggregation with its row updated in the cache inline: named aggregators column by
    column (built-ins' usual cases without a call), count / reduce / user aggregates through their add.

    Rows are those of :mod:`streamlet.topology.aggregate` (:mod:`streamlet.state.row`); the local
    sequence of the replay mark is 0 because each input record reaches the aggregation at most
    once on a single-output path. The change goes on stamped with the largest timestamp the
    aggregate has seen (only a record arriving out of order pays for a stamped message).
    """
    plan = getattr(w.comp.forward_of(node.name), "plan", None)
    if plan is None or not w.comp.single_output_path(node.name):
        w.closure(node.name, k, v, depth)
        return
    g = {name: w.bind(getattr(plan, name), f"agg_{name}")
         for name in ("values", "dirty", "get", "initial", "add", "present")}
    missing = w.bind(MISSING, "MISSING")
    aggregation = plan.aggregation
    if plan.down is not None or not plan.same_key or aggregation is None:
        w.key_used(k)
    o, key, cur, st, old = w.var("o"), w.var("akb"), w.var("row"), w.var("st"), w.var("old")
    ts, rts = w.var("ts"), w.var("rts")  # the record's timestamp, the row's (the largest seen)
    row_ts = REPARTITIONED_TS if plan.repartitioned else TS
    # the row's time stamps what goes downstream: with nothing downstream, and aggregators that
    # ignore timestamps, the record's timestamp is not read at all (rows keep -1, "unknown")
    keep_ts = plan.down is not None or plan.uses_ts
    w.emit(depth, f"if {v} is not None and {k} is not None:  # aggregate {node.name}")
    d = depth + 1
    w.emit(d, f"{o} = m.offset()")
    w.emit(d, f"{ts} = {w.ts if keep_ts else '-1'}")
    w.emit(d, f"{key} = kb" if plan.same_key else f"{key} = {w.bind(plan.kser, 'agg_kser')}({k})")
    if plan.repartitioned:
        uo, us, up, marks, done = w.var("uo"), w.var("us"), w.var("up"), w.var("marks"), w.var("done")
        w.emit(d, f"{uo}, {us}, {up} = {w.bind(read_origin, 'read_origin')}(m)")
    w.emit(d, f"{cur} = {g['values']}.get({key}, {missing})")
    w.emit(d, f"if {cur} is {missing}:")
    w.emit(d + 1, f"{cur} = {g['get']}({key})")
    if aggregation is not None:
        w.emit(d + 1, f"if {cur} is not None:")  # a stored row: its columns as this aggregation's?
        w.emit(d + 2, f"{w.bind(aggregation._check_shape, 'agg_check_shape')}({cur}[{STATE}])")
    w.emit(d, f"if {cur} is None:")
    _add(w, plan, g, f"{g['initial']}()", st, k, v, o, ts, d + 1)
    if plan.repartitioned:
        w.emit(d + 1, f"{g['values']}[{key}] = {_row(plan, f'{{{up}: [{uo}, {us}, 0]}}', st, ts)}")
    else:
        w.emit(d + 1, f"{g['values']}[{key}] = {_row(plan, o, st, ts)}")
    w.emit(d + 1, f"{g['dirty']}[{key}] = None")
    down = w.bind(plan.down, "agg_down") if plan.down is not None else None
    if down is not None:
        w.needs_msg = True  # the closures downstream read ctx.msg
        w.emit(d + 1, f"{down}({k}, ({g['present']}({st}), None))")
    if plan.repartitioned:
        # applied unless the upstream task wrote this record before (at or below the partition's mark)
        w.emit(d, "else:")
        w.emit(d + 1, f"{marks} = {cur}[{MARK}]")
        w.emit(d + 1, f"{done} = {marks}.get({up})")
        w.emit(d + 1, f"if {done} is None or {uo} > {done}[0] or ({uo} == {done}[0] and {us} > {done}[1]):")
        d += 1
    else:
        w.emit(d, f"elif {o} > {cur}[{MARK}]:  # at or below: already applied (a replay)")
    if down is not None and plan.want_old:
        w.emit(d + 1, f"{old} = {g['present']}({cur}[{STATE}])")
    if aggregation is not None:
        _add_in_place(w, aggregation, f"{cur}[{STATE}]", st, v, o, ts, d + 1)
    else:
        _add(w, plan, g, f"{cur}[{STATE}]", st, k, v, o, ts, d + 1)
        w.emit(d + 1, f"{cur}[{STATE}] = {st}")
    if plan.repartitioned:
        w.emit(d + 1, f"{marks}[{up}] = [{uo}, {us}, 0]")
    else:
        w.emit(d + 1, f"{cur}[{MARK}] = {o}")
        w.emit(d + 1, f"{cur}[{SEQ}] = 0")
    if keep_ts:
        w.emit(d + 1, f"{rts} = {cur}[{row_ts}]")
        w.emit(d + 1, f"if {ts} > {rts}:")
        w.emit(d + 2, f"{cur}[{row_ts}] = {rts} = {ts}")
    w.emit(d + 1, f"{g['dirty']}[{key}] = None")
    if down is not None:
        change = f"({g['present']}({st}), {old if plan.want_old else 'None'})"
        w.emit(d + 1, f"if {rts} == {ts}:")
        w.emit(d + 2, f"{down}({k}, {change})")
        w.emit(d + 1, "else:  # out of order: the output keeps the aggregate's time")
        w.globals["ctx"] = w.comp.ctx
        w.emit(d + 2, f"{w.bind(forward_at, 'forward_at')}(ctx, {down}, {k}, {change}, {rts})")


def _row(plan: Any, mark: str, st: str, ts: str) -> str:
    """The expression of a new row (the order of :mod:`streamlet.state.row`)."""
    if plan.repartitioned:
        slots = {MARK: mark, STATE: st, REPARTITIONED_TS: ts}
    else:
        slots = {MARK: mark, STATE: st, SEQ: "0", TS: ts}
    return "[" + ", ".join(slots[i] for i in range(len(slots))) + "]"


def _add(w: _Writer, plan: Any, g: dict[str, str], state: str, st: str, k: str, v: str, o: str, ts: str,
         depth: int) -> None:
    """``st`` = the new state made from ``state`` by the spec's add (checked when the spec says so);
    named aggregators' add takes no key."""
    args = f"{v}, {o}, {ts}" if plan.aggregation is not None else f"{k}, {v}, {o}, {ts}"
    w.emit(depth, f"{st} = {g['add']}({state}, {args})")
    if plan.check is not None:
        w.emit(depth, f"{w.bind(plan.check, 'agg_check')}({st})")


def _add_in_place(w: _Writer, aggregation: Any, row_state: str, st: str, v: str, o: str, ts: str,
                  depth: int) -> None:
    """``aggregation.add`` written out on the row's state list, updated in place.

    Every column's new state is worked out before any is stored, so a failing
    column leaves the row as it was. Built-in aggregators' usual cases need no
    call and allocate nothing (:func:`inline_update`): ``count`` is
    ``st[i] + 1``, ``earliest_by_offset`` keeps its state, ``latest_by_offset``
    overwrites its ``[offset, value]`` pair. Emitted where the record's offset
    is known to be above the row's, so no column compares offsets.
    """
    keep = w.bind(KEEP, "KEEP")
    w.emit(depth, f"{st} = {row_state}")
    stores: list[tuple[int, str]] = []
    for i, agg in enumerate(aggregation.aggregators):
        f = w.var("agg_add_col")
        names = {"state": st, "value": v, "offset": o, "timestamp": ts, "s": w.var("s"), "x": w.var("x")}
        u = inline_update(agg, i, w.globals, f, w.var("agg_field"), newer=True)
        n = w.var("n")
        if u is None:
            w.globals[f] = agg.add
            w.emit(depth, f"{n} = {f}({st}[{i}], {v}, {o}, {ts})")
            stores.append((depth, f"{st}[{i}] = {n}"))
            continue
        if u.cond is None:
            w.emit(depth, f"{n} = {u.expr.format(**names)}")
            stores.append((depth, f"{st}[{i}] = {n}"))
            continue
        w.emit(depth, f"if {u.cond.format(**names)}:")
        w.emit(depth + 1, f"{n} = {keep}")
        w.emit(depth, "else:")
        w.emit(depth + 1, f"{n} = {u.call.format(**names)}")
        if u.apply:
            stores.append((depth, f"if {n} is {keep}:"))
            stores.extend((depth + 1, a.format(**names)) for a in u.apply)
            stores.append((depth, "else:"))
            stores.append((depth + 1, f"{st}[{i}] = {n}"))
        else:
            stores.append((depth, f"if {n} is not {keep}:"))
            stores.append((depth + 1, f"{st}[{i}] = {n}"))
    for d, line in stores:
        w.emit(d, line)


def stream_table_join(w: _Writer, node: Node, k: str, v: str, depth: int) -> None:
    """The lookup inline, then the rest of the chain generated on the joined value.

    A source table keyed like the stream is read by the input's key bytes
    straight from its cache (its rows are ``(value, timestamp)``); any other
    table through its value getter.
    """
    comp = w.comp
    table = comp.topology.nodes[node.params["table"]]
    tv, vj = w.var("tv"), w.var("vj")
    left = bool(node.params.get("left"))
    if left:  # a record without a key gets the joiner with no row (Kafka Streams KIP-962)
        w.emit(depth, f"if {v} is not None:  # left join {table.name}")
        w.emit(depth + 1, f"{tv} = None")
        w.emit(depth + 1, f"if {k} is not None:")
        d = depth + 2
    else:
        w.emit(depth, f"if {k} is not None and {v} is not None:  # join {table.name}")
        d = depth + 1
    by_key_bytes = table.kind == "table_source" and comp.same_key_bytes(node.name, table.params["key_serde"])
    if by_key_bytes:
        cache = comp.ctx.stores[table.params["store"]]
        values = w.bind(cache.hot_path()[0], "table_values")
        get, missing = w.bind(cache.get, "table_get"), w.bind(MISSING, "MISSING")
        w.emit(d, f"{tv} = {values}.get(kb, {missing})")
        w.emit(d, f"if {tv} is {missing}:")
        w.emit(d + 1, f"{tv} = {get}(kb)")
        w.emit(d, f"if {tv} is not None:")
        w.emit(d + 1, f"{tv} = {tv}[0]  # the row's value, without its time")
    else:
        w.key_used(k)
        w.needs_msg = True  # value getters may read ctx.msg
        w.emit(d, f"{tv} = {w.bind(getter_of(comp, table.name), 'table_lookup')}({k})")
    if left:
        d = depth + 1
    if not node.params.get("left"):
        w.emit(d, f"if {tv} is not None:")
        d += 1
    w.emit(d, f"{vj} = {w.bind(node.fn, 'joiner')}({v}, {tv})")
    if w.subtree_empty(node.name):
        w.emit(d, "pass")
    w.children(node.name, k, vj, d)
