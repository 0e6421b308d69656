"""Generate one Python function per source topic for the stateless part of a chain.

The closures of :mod:`streamlet.topology.operators` cost one Python call per
node per record. For the common stateless kinds this module writes the
chain out as straight-line code instead — what a hand-written loop would do —
with the serdes' functions, the user functions and the producer bound as
globals of the generated code. For ``stream.filter(f).map_values(g).to("out")``
(string keys, JSON values) the task of partition 3 gets:

    def source_orders(m):                  # one record: the TestDriver, fallbacks
        kb = m.key()
        vb = m.value()
        try:
            k0 = None if kb is None else kb.decode()
            v0 = None if vb is None else value_de_1(vb)          # orjson.loads
        except Exception as exc:
            raise DeserializationFailure(exc) from exc
        if filter_2(k0, v0):
            v4 = map_values_3(v0)
            ts7 = m.timestamp()[1]
            ts7 = ts7 if ts7 > 0 else 0
            vb10 = None if v4 is None else value_ser_5(v4)       # orjson.dumps
            try:                                                 # key unchanged: input bytes
                produce_raw_8(topic_6, vb10, kb, -1, None, None, ts7, m.headers())
            except BufferError:
                produce_9(topic_6, vb10, kb, -1, ts7, m.headers())
            del vb10

    def run_source_orders(m, rest):        # the runtime: a run of records of partition 3
        try:
            for m in chain((m,), rest):
                if m.error() is not None or m.partition() != PARTITION or m.topic() != TOPIC:
                    return m
                ...the same body...
        except DeserializationFailure as exc:
            raise RunFailure(m, exc.cause, 'deserialize') from exc.cause
        except Exception as exc:
            raise RunFailure(m, exc, 'process') from exc
        return None

A node kind without a generator here (stateful nodes, ``process``, sinks
with a partitioner, nodes with several parents such as ``merge``) is called
through its compiled closure (``Compilation.forward_of``), so every kind
registered with ``@compiler`` keeps working; the closures then read the
input message from ``ctx.msg``, which the generated code sets whenever such a
closure is reachable. Semantics are those of the closures, node for node.
"""

from __future__ import annotations

import codecs
import dis
import hashlib
import inspect
import itertools
import linecache
import types
from types import CodeType
from typing import Any, Callable

from streamlet.serde.base import FunctionSerde
from streamlet.topology.compile import Compilation, DeserializationFailure, RunFailure, SourceFn
from streamlet.topology.graph import Node

#: Set to False to run every chain through the closures alone (debugging, tests).
enabled = True

#: Python allows 20 nested blocks; deeper chains continue through closures.
MAX_DEPTH = 12

NodeGenerator = Callable[["_Writer", Node, str, str, int], None]
GENERATORS: dict[str, NodeGenerator] = {}
#: kinds whose generators report every use of the key (``_Writer.key_used``); for any other
#: kind the source key counts as read
KEY_AWARE = {"filter", "map", "map_values", "select_key", "flat_map", "flat_map_values", "peek",
             "foreach", "branch", "split", "sink"}
_CODE: dict[str, CodeType] = {}


def generator(*kinds: str) -> Callable[[NodeGenerator], NodeGenerator]:
    """Register the code generator of one or more node kinds."""

    def register(fn: NodeGenerator) -> NodeGenerator:
        for kind in kinds:
            GENERATORS[kind] = fn
        return fn

    return register


def _string_de_code() -> Any:
    from streamlet.serde.builtin import string

    return getattr(string()._de, "__code__", None)


_STRING_DE_CODE = _string_de_code()


def _is_utf8_string(serde: Any) -> bool:
    """The built-in ``string()`` serde with UTF-8 (its decode is ``b.decode(encoding)``)."""
    if not isinstance(serde, FunctionSerde) or _STRING_DE_CODE is None:
        return False
    de = serde._de
    if getattr(de, "__code__", None) is not _STRING_DE_CODE:
        return False
    (cell,) = de.__closure__  # the encoding
    return codecs.lookup(cell.cell_contents).name == "utf-8"


def _deserialize_expr(w: "_Writer", serde: Any, var: str, hint: str) -> str:
    """The expression that deserializes the bytes in ``var`` (``None`` stays ``None``).

    A :class:`FunctionSerde`'s inner function is called directly (one Python call
    less); the built-in string serde's ``b.decode(encoding)`` is written inline.
    """
    if isinstance(serde, FunctionSerde):
        de = serde._de
        if getattr(de, "__code__", None) is _STRING_DE_CODE and _STRING_DE_CODE is not None:
            (cell,) = de.__closure__  # the encoding
            encoding = cell.cell_contents
            if codecs.lookup(encoding).name == "utf-8":
                return f"None if {var} is None else {var}.decode()"
            return f"None if {var} is None else {var}.decode({w.bind(encoding, 'encoding')})"
        return f"None if {var} is None else {w.bind(de, hint)}({var})"
    return f"{w.bind(serde.deserialize, hint)}({var})"


#: names through which a function could read its arguments without naming them
_INTROSPECTION = frozenset({"locals", "vars", "eval", "exec", "_getframe", "currentframe", "getframeinfo",
                            "stack", "f_locals", "getargvalues", "settrace", "setprofile"})


def reads_first_argument(fn: Any) -> bool:
    """False only when ``fn`` provably never reads its first parameter (e.g. ``lambda k, v: v["x"]``).

    Conservative: anything but a plain Python function with two or more
    positional parameters, no ``*args``/``**kwargs``, no closure over the
    parameter and no frame introspection counts as reading it.
    """
    code = getattr(fn, "__code__", None)
    if type(fn) is not types.FunctionType or not isinstance(code, types.CodeType):
        return True
    if code.co_argcount < 2 or code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS):
        return True
    name = code.co_varnames[0]
    if name in code.co_cellvars or _INTROSPECTION & set(code.co_names):
        return True
    for ins in dis.get_instructions(code):
        if "FAST" in ins.opname or "DEREF" in ins.opname or "CLOSURE" in ins.opname or "CELL" in ins.opname:
            val = ins.argval
            if val == name or (isinstance(val, tuple) and name in val):
                return True
    return False


def _raw_ser(serde: Any) -> tuple[Callable[[Any], bytes], bool]:
    if isinstance(serde, FunctionSerde):
        return serde._ser, False
    return serde.serialize, True


class _Writer:
    """Accumulates the source of one generated function and the globals it uses."""

    def __init__(self, comp: Compilation) -> None:
        self.comp = comp
        self.lines: list[str] = []
        self.globals: dict[str, Any] = {"DeserializationFailure": DeserializationFailure,
                                        "BufferError": BufferError}
        self._n = 0
        #: a closure is reachable: it reads the message from ctx.msg
        self.needs_msg = False
        #: some step reads the deserialized source key (``k0``)
        self.reads_k0 = False

    def bind(self, obj: Any, hint: str) -> str:
        self._n += 1
        name = f"{_ident(hint)}_{self._n}"
        self.globals[name] = obj
        return name

    def var(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    # -- walking the graph -------------------------------------------------------
    def children(self, name: str, k: str, v: str, depth: int) -> None:
        for child in self.comp.topology.children[name]:
            self.node(child, k, v, depth)

    def node(self, name: str, k: str, v: str, depth: int) -> None:
        node = self.comp.topology.nodes[name]
        gen = GENERATORS.get(node.kind)
        if gen is None or len(node.parents) != 1 or depth > MAX_DEPTH:
            self.closure(name, k, v, depth)
            return
        if node.kind not in KEY_AWARE:
            self.key_used(k, None)
        gen(self, node, k, v, depth)

    def key_used(self, k: str, fn: Any) -> None:
        """Step ``fn`` (None: unknown code) receives key ``k``."""
        if k == "k0" and (fn is None or reads_first_argument(fn)):
            self.reads_k0 = True

    def closure(self, name: str, k: str, v: str, depth: int) -> None:
        self.key_used(k, None)
        fn = self.bind(self.comp.forward_of(name), name)
        self.needs_msg = True
        self.emit(depth, f"{fn}({k}, {v})")

    def subtree_empty(self, name: str) -> bool:
        return not self.comp.topology.children[name]


def generate_source(comp: Compilation, node: Node) -> SourceFn:
    """The generated ``fn(message)`` of source ``node`` for this task.

    ``fn.run(m, rest)`` is the same chain as a loop, for the record loop of the
    runtime: it processes ``m`` (already routed to this task), then takes
    records from the iterator ``rest`` while they belong to the same topic and
    partition and are not error events; it returns the first record it did
    not process (``None`` when ``rest`` is exhausted). A record that fails
    raises :class:`RunFailure` carrying that record. ``fn.run_one_topic`` is
    the same for a consumer subscribed to this one topic (no topic check).
    """
    w = _Writer(comp)
    w.children(node.name, "k0", "v0", 0)
    steps, w.lines = w.lines, []
    key_serde = node.params["key_serde"]
    w.emit(0, "kb = m.key()")
    w.emit(0, "vb = m.value()")
    w.emit(0, "try:")
    if w.reads_k0 or not _is_utf8_string(key_serde):
        w.emit(1, f"k0 = {_deserialize_expr(w, key_serde, 'kb', 'key_de')}")
    else:
        # No step reads the decoded key (sinks reuse its bytes, functions ignore it): only
        # check that it would decode, as eagerly decoding would (an ASCII key always does).
        w.emit(1, "if kb is not None and not kb.isascii():")
        w.emit(2, "kb.decode()")
        w.emit(1, "k0 = kb  # not decoded: no step reads it")
    w.emit(1, f"v0 = {_deserialize_expr(w, node.params['value_serde'], 'vb', 'value_de')}")
    w.emit(0, "except Exception as exc:")
    w.emit(1, "raise DeserializationFailure(exc) from exc")
    body = w.lines + steps
    if w.needs_msg:
        w.globals["ctx"] = comp.ctx
        body.insert(0, "ctx.msg = m")
    w.globals.update(RunFailure=RunFailure, chain=itertools.chain, TOPIC=node.params["topic"],
                     PARTITION=comp.ctx.partition)
    name = _ident(f"source_{node.params['topic']}")
    src = "\n".join([
        f"def {name}(m):",
        *_indent(body, 1),
        "",
        *_run_function(f"run_{name}", body, check_topic=True),
        *_run_function(f"run1_{name}", body, check_topic=False),
    ])
    code = _compile(src, node.name)
    namespace = dict(w.globals)
    exec(code, namespace)
    fn = namespace[name]
    fn.run = namespace[f"run_{name}"]
    fn.run_one_topic = namespace[f"run1_{name}"]
    fn.__streamlet_source__ = src
    return fn  # type: ignore[no-any-return]


def _compile(src: str, label: str) -> CodeType:
    """Compile generated source once: every task of a sub-topology generates the same text."""
    code = _CODE.get(src)
    if code is None:
        digest = hashlib.sha1(src.encode()).hexdigest()[:10]
        if len(_CODE) >= 512:
            _CODE.clear()
        code = _CODE[src] = compile(src, f"<streamlet chain {label} {digest}>", "exec")
    # (re)register the source so tracebacks through generated code show its lines
    linecache.cache[code.co_filename] = (len(src), None, src.splitlines(True), code.co_filename)
    return code


def _run_function(name: str, body: list[str], check_topic: bool) -> list[str]:
    """``name(m, rest)``: the chain as a loop over ``m`` and the records of its partition after it.

    Without ``check_topic`` it is for a consumer that reads one topic only.
    """
    same = "m.partition() != PARTITION" + (" or m.topic() != TOPIC" if check_topic else "")
    return [
        f"def {name}(m, rest):",
        "    try:",
        "        for m in chain((m,), rest):",
        f"            if m.error() is not None or {same}:",
        "                return m",
        *_indent(body, 3),
        "    except DeserializationFailure as exc:",
        "        raise RunFailure(m, exc.cause, 'deserialize') from exc.cause",
        "    except Exception as exc:",
        "        raise RunFailure(m, exc, 'process') from exc",
        "    return None",
        "",
    ]


def _indent(lines: list[str], depth: int) -> list[str]:
    pad = "    " * depth
    return [pad + line for line in lines]


def _ident(text: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return out if out and not out[0].isdigit() else "_" + out


# -- the stateless kinds ------------------------------------------------------------
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
    w.emit(depth, f"{ts} = m.timestamp()[1]")
    w.emit(depth, f"{ts} = {ts} if {ts} > 0 else 0")
    if raw is None:
        fn = w.bind(produce, "produce")
        w.emit(depth, f"{fn}({topic}, {value}, {key}, -1, {ts}, m.headers())")
        return
    # the client's own produce(): positional arguments (keywords cost a dict per call);
    # only when its queue is full does the waiting wrapper take over
    fn, slow = w.bind(raw, "produce_raw"), w.bind(produce, "produce")
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
    # drop the encoded bytes now: kept alive into the next record, they make the next
    # encode allocate elsewhere (measured: ~150 ns per record with orjson)
    w.emit(depth, f"del {', '.join(encoded)}")
