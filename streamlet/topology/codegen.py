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
            except KafkaException as exc:                        # refused (too large...):
                produce_failed_11(exc, topic_6, vb10, kb, m.headers())  # raises ProduceError
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

from confluent_kafka import KafkaException

from streamlet.serde.base import FunctionSerde
from streamlet.topology.compile import Compilation, DeserializationFailure, RunFailure, SourceFn
from streamlet.topology.graph import Node
from streamlet.topology.timestamps import tracks_stream_time, with_timestamp

#: Set to False to run every chain through the closures alone (debugging, tests).
enabled = True

#: Python allows 20 nested blocks; deeper chains continue through closures.
MAX_DEPTH = 12

NodeGenerator = Callable[["_Writer", Node, str, str, int], None]
GENERATORS: dict[str, NodeGenerator] = {}
#: kinds whose generators report every use of the key (``_Writer.key_used``); for any other
#: kind the source key counts as read
KEY_AWARE = {"filter", "map", "map_values", "select_key", "flat_map", "flat_map_values", "peek",
             "foreach", "branch", "split", "sink", "aggregate",
             "stream_table_join"}
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
                                        "BufferError": BufferError, "KafkaException": KafkaException}
        self._n = 0
        #: a closure is reachable: it reads the message from ctx.msg
        self.needs_msg = False
        #: some step reads the deserialized source key (``k0``)
        self.reads_k0 = False
        #: the expression of the record's timestamp (``ts0`` when the source extracts its own)
        self.ts = "m.timestamp()[1]"

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
    extract = node.params.get("timestamp_extractor")
    if extract is not None:
        w.ts = "ts0"
        if extract.reads_key:
            w.reads_k0 = True
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
    # only a configured extractor or a chain that reads stream time costs anything here
    stream_time = tracks_stream_time(comp, node.name)
    if extract is not None:
        w.emit(0, f"ts0 = {w.bind(extract, 'timestamp_extractor')}(k0, v0, m.timestamp()[1])")
    elif stream_time:
        w.emit(0, "ts0 = m.timestamp()[1]")
    if stream_time:
        w.globals["ctx"] = comp.ctx
        w.emit(0, "if ts0 > ctx.stream_time:")
        w.emit(1, "ctx.stream_time = ts0")
    body = w.lines + steps
    if w.needs_msg:
        w.globals["ctx"] = comp.ctx
        if extract is not None:  # the closures read the extracted timestamp from ctx.msg
            body.insert(len(w.lines), f"ctx.msg = {w.bind(with_timestamp, 'with_timestamp')}(m, ts0)")
        else:
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


# the generators of the stateless kinds register themselves
from streamlet.topology import codegen_nodes, codegen_stateful  # noqa: E402,F401
