"""Specific records: an Avro record schema bound to a dataclass (``serde.avro(schema,
record_type=Order)``).

Values are instances of the dataclass; fields whose type is itself a dataclass
(a nested Avro record), an ``enum.Enum`` (an Avro enum, by symbol name), or a
``list`` / ``dict`` / ``Optional`` of those are converted both ways; every
other field is handed to fastavro as it is (``Decimal``, ``datetime``,
``UUID``, ``bytes``...). The dataclass and the schema are checked against each
other once, when the serde is made.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, Callable, Optional

from streamlet.errors import ConfigError

Convert = Optional[Callable[[Any], Any]]


def _record_fields(schema: Any) -> list[dict[str, Any]] | None:
    return schema.get("fields") if isinstance(schema, dict) and schema.get("type") == "record" else None


def _converters(tp: Any) -> tuple[Convert, Convert]:
    """``(to_avro, from_avro)`` for a field annotated ``tp``; ``None`` where the value passes as it is."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_converters(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return (lambda v: v.name), (lambda s, _e=tp: _e[s])
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            to, frm = _converters(inner[0])
            if to is None:
                return None, None
            return (lambda v, _f=to: None if v is None else _f(v)), \
                   (lambda v, _f=frm: None if v is None else _f(v))  # type: ignore[misc]
        return None, None
    if origin in (list, typing.List) and args:
        to, frm = _converters(args[0])
        if to is None:
            return None, None
        return (lambda v, _f=to: [_f(x) for x in v]), (lambda v, _f=frm: [_f(x) for x in v])  # type: ignore[misc]
    if origin in (dict, typing.Dict) and len(args) == 2:
        to, frm = _converters(args[1])
        if to is None:
            return None, None
        return (lambda v, _f=to: {k: _f(x) for k, x in v.items()}), \
               (lambda v, _f=frm: {k: _f(x) for k, x in v.items()})  # type: ignore[misc]
    return None, None


def _dataclass_converters(cls: type) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    plain = [n for n in names if _converters(hints.get(n, Any))[0] is None]
    conv = [(n, *_converters(hints[n])) for n in names if n not in plain]

    def to_avro(value: Any) -> dict[str, Any]:
        if not isinstance(value, cls):
            raise TypeError(f"expected a {cls.__name__}, got {type(value).__name__}: {value!r}")
        out = {n: getattr(value, n) for n in plain}
        for n, to, _ in conv:
            out[n] = to(getattr(value, n))
        return out

    def from_avro(data: dict[str, Any]) -> Any:
        kwargs = {n: data[n] for n in plain if n in data}
        for n, _, frm in conv:
            if n in data:
                kwargs[n] = frm(data[n])
        return cls(**kwargs)

    return to_avro, from_avro


def check_record_type(record_type: type, schema: Any) -> None:
    """Raise :class:`ConfigError` unless ``record_type`` is a dataclass whose fields match the record
    ``schema`` (a parsed schema): every schema field is a dataclass field, and every dataclass field
    without a default is in the schema."""
    if not (isinstance(record_type, type) and dataclasses.is_dataclass(record_type)):
        raise ConfigError(f"record_type must be a dataclass (or pass to_dict= and from_dict=), "
                          f"not {record_type!r}")
    fields = _record_fields(schema)
    if fields is None:
        raise ConfigError(f"record_type={record_type.__name__} needs a record schema, got {schema!r}")
    in_schema = {f["name"] for f in fields}
    own = {f.name: f for f in dataclasses.fields(record_type)}
    missing = sorted(in_schema - set(own))
    required = sorted(n for n, f in own.items() if n not in in_schema and f.default is dataclasses.MISSING
                      and f.default_factory is dataclasses.MISSING)
    if missing or required:
        parts = []
        if missing:
            parts.append(f"schema fields {missing} are not fields of {record_type.__name__}")
        if required:
            parts.append(f"{record_type.__name__} fields {required} are not in the schema and have no default")
        raise ConfigError(f"record_type {record_type.__name__} does not match schema "
                          f"{schema.get('name')!r}: " + "; ".join(parts))


def record_codec(record_type: type, schema: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """``(to_dict, from_dict)`` for a dataclass bound to a record schema (checked first)."""
    check_record_type(record_type, schema)
    return _dataclass_converters(record_type)
