"""The serde protocol: two functions, bytes in and out, ``None`` passes through.

Serdes that need to know the topic and headers: :mod:`streamlet.serde.context`."""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

from streamlet.serde.context import needs_context


@runtime_checkable
class Serde(Protocol):
    """Turns values into bytes and back. ``None`` must map to ``None`` (tombstones)."""

    name: str

    def serialize(self, value: Any) -> bytes | None: ...

    def deserialize(self, data: bytes | None) -> Any: ...


class FunctionSerde:
    """A serde from two functions that never see ``None``.

    >>> upper = FunctionSerde("upper", lambda s: s.upper().encode(), bytes.decode)
    """

    __slots__ = ("name", "identity", "_ser", "_de", "serialize", "deserialize")

    def __init__(self, name: str, ser: Callable[[Any], bytes], de: Callable[[bytes], Any],
                 identity: Any = None) -> None:
        self.name = name
        #: what makes two serdes write the same bytes for the same value (see :func:`same_bytes`)
        self.identity = identity
        self._ser, self._de = ser, de

        def serialize(value: Any, _ser: Callable[[Any], bytes] = ser) -> bytes | None:
            return None if value is None else _ser(value)

        def deserialize(data: bytes | None, _de: Callable[[bytes], Any] = de) -> Any:
            return None if data is None else _de(data)

        self.serialize = serialize
        self.deserialize = deserialize

    def __repr__(self) -> str:
        return f"serde.{self.name}()"


def same_bytes(a: Any, b: Any) -> bool:
    """Whether serdes ``a`` and ``b`` give the same bytes for the same value, so that bytes written by
    one can be reused as the other's (a key passed through, a store read by the input's key bytes).

    Built-in serdes say what they are (``identity``: ``("string", "utf-8")``, ``("json",)``...);
    any other serde is the same only as itself — never by its name, which two serdes may share
    (``string("latin-1")`` and ``string()`` are both called "string"). A serde that needs a
    context (:class:`~streamlet.serde.context.ContextSerde`) is not even the same as itself: its
    bytes may depend on the topic (a Schema Registry id registered per subject), so bytes written
    for one topic are never reused for another.
    """
    if needs_context(a) or needs_context(b):
        return False
    if a is b:
        return True
    ia, ib = getattr(a, "identity", None), getattr(b, "identity", None)
    return ia is not None and ia == ib
