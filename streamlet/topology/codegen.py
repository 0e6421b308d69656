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

import hashlib
import itertools
import linecache
from types import CodeType
from typing import TYPE_CHECKING, Any, Callable

from confluent_kafka import KafkaException

from streamlet.serde.base import FunctionSerde
from streamlet.serde.context import KEY, VALUE, context_expr
from streamlet.topology.chain import DeserializationFailure, RunFailure, SourceFn
from streamlet.topology.graph import Node
from streamlet.topology.kinds import KINDS, resolve
from streamlet.topology.timestamps import tracks_stream_time, with_timestamp

if TYPE_CHECKING:
    from streamlet.topology.compilation import Compilation

#: Set to False to run every chain through the closures alone (debugging, tests).
enabled = True

#: Python allows 20 nested blocks; deeper chains continue through closures.
MAX_DEPTH = 12

#: ``generate(writer, node, key_var, value_var, depth)``: writes one node's code (see kinds.NodeKind.generate)
NodeGenerator = Callable[["_Writer", Node, str, str, int], None]
_CODE: dict[str, CodeType] = {}


def _string_encoding(serde: Any) -> str | None:
    """The encoding of a string serde that says it is one (``identity == ("string", encoding)``)."""
    identity = getattr(serde, "identity", None)
    if isinstance(serde, FunctionSerde) and isinstance(identity, tuple) and len(identity) == 2 \
            and identity[0] == "string":
        return str(identity[1])
    return None


def _deserialize_expr(w: "_Writer", serde: Any, var: str, hint: str, topic: str, field: Any) -> str:
    """The expression that deserializes the bytes in ``var`` (``None`` stays ``None``).

    A :class:`FunctionSerde`'s inner function is called directly (one Python call
    less); a string serde's ``b.decode(encoding)`` is written inline; a serde that
    needs a context gets ``topic``, ``field`` and the record's headers.
    """
    with_context = context_expr(serde, "deserialize", topic, field)
    if with_context is not None:
        return with_context(w.bind, var, "m.headers()")
    if isinstance(serde, FunctionSerde):
        encoding = _string_encoding(serde)
        if encoding == "utf-8":
            return f"None if {var} is None else {var}.decode()"
        if encoding is not None:
            return f"None if {var} is None else {var}.decode({w.bind(encoding, 'encoding')})"
        return f"None if {var} is None else {w.bind(serde._de, hint)}({var})"
    return f"{w.bind(serde.deserialize, hint)}({var})"


def _raw_ser(serde: Any) -> tuple[Callable[[Any], bytes], bool]:
    if isinstance(serde, FunctionSerde):
        return serde._ser, False
    return serde.serialize, True


def _serialize_expr(w: "_Writer", serde: Any, var: str, hint: str, topic: str, field: Any,
                    headers: str) -> str:
    """The expression that serializes ``var`` for ``topic`` (``None`` stays ``None``); a serde that
    needs a context gets ``headers``, the expression of the headers the record is written with."""
    with_context = context_expr(serde, "serialize", topic, field)
    if with_context is not None:
        return with_context(w.bind, var, headers)
    fn, handles_none = _raw_ser(serde)
    name = w.bind(fn, hint)
    return f"{name}({var})" if handles_none else f"None if {var} is None else {name}({var})"


class _Writer:
    """Accumulates the source of one generated function and the globals it uses."""

    def __init__(self, comp: "Compilation") -> None:
        self.comp = comp
        self.lines: list[str] = []
        self.globals: dict[str, Any] = {"DeserializationFailure": DeserializationFailure,
                                        "BufferError": BufferError, "KafkaException": KafkaException}
        self._n = 0
        #: a closure is reachable: it reads the message from ctx.msg
        self.needs_msg = False
        #: some step reads the deserialized source key (``k0``)
        self.reads_k0 = False
        #: the source node of the chain being written
        self.source: Node | None = None
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
        kind = KINDS[node.kind]
        if kind.generate is None or len(node.parents) != 1 or depth > MAX_DEPTH:
            self.closure(name, k, v, depth)
            return
        if not kind.key_aware:
            self.key_used(k)
        resolve(kind.generate)(self, node, k, v, depth)

    def key_used(self, k: str) -> None:
        """A step receives key ``k``: the source key must be decoded if it is ``k0``."""
        if k == "k0":
            self.reads_k0 = True

    def closure(self, name: str, k: str, v: str, depth: int) -> None:
        self.key_used(k)
        fn = self.bind(self.comp.forward_of(name), name)
        self.needs_msg = True
        self.emit(depth, f"{fn}({k}, {v})")

    def subtree_empty(self, name: str) -> bool:
        return not self.comp.topology.children[name]


def generate_source(comp: "Compilation", node: Node) -> SourceFn:
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
    w.source = node
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
    if w.reads_k0 or _string_encoding(key_serde) != "utf-8":
        w.emit(1, f"k0 = {_deserialize_expr(w, key_serde, 'kb', 'key_de', node.params['topic'], KEY)}")
    else:
        # No step reads the decoded key (sinks reuse its bytes, functions ignore it): only
        # check that it would decode, as eagerly decoding would (an ASCII key always does).
        w.emit(1, "if kb is not None and not kb.isascii():")
        w.emit(2, "kb.decode()")
        w.emit(1, "k0 = kb  # not decoded: no step reads it")
    value_de = _deserialize_expr(w, node.params["value_serde"], "vb", "value_de", node.params["topic"], VALUE)
    w.emit(1, f"v0 = {value_de}")
    w.emit(0, "except Exception as exc:")
    w.emit(1, "raise DeserializationFailure(exc) from exc")
    # only a configured extractor or a chain that reads stream time costs anything here
    stream_time = tracks_stream_time(comp, node.name)
    if extract is not None and extract.fn is None:
        # a field of a dict value holding an int >= 0 (the usual case) is read inline; anything else
        # (a tombstone, a float, a missing field...) goes through the extractor, which decides
        w.emit(0, f"ts0 = v0.get({w.bind(extract.field, 'timestamp_field')}) if v0.__class__ is dict else None")
        w.emit(0, "if ts0.__class__ is not int or ts0 < 0:")
        w.emit(1, f"ts0 = {w.bind(extract, 'timestamp_extractor')}(k0, v0, m.timestamp()[1])")
    elif extract is not None:
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

