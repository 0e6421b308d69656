"""Avro schema compatibility for the embedded Schema Registry: can a reader schema read what a writer
schema wrote (the Avro specification's schema resolution rules), and the registry's compatibility
levels built on it.

Logical types do not take part in resolution (as in Avro's own checker): a
``long`` read as ``timestamp-millis`` is compatible. Names are compared
unqualified, or through the reader's aliases.
"""

from __future__ import annotations

from typing import Any

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
#: writer type -> the reader types it may be promoted to
PROMOTIONS = {"int": {"long", "float", "double"}, "long": {"float", "double"}, "float": {"double"},
              "string": {"bytes"}, "bytes": {"string"}}

LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
          "FULL_TRANSITIVE")


def _collect(schema: Any, names: dict[str, Any], namespace: str | None = None) -> None:
    """Every named type of ``schema`` (full name and short name) into ``names``."""
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, names, namespace)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            name = str(schema["name"])
            ns = schema.get("namespace", namespace)
            full = name if "." in name or not ns else f"{ns}.{name}"
            names.setdefault(full, schema)
            names.setdefault(full.rsplit(".", 1)[-1], schema)
            namespace = full.rsplit(".", 1)[0] if "." in full else ns
            for field in schema.get("fields", ()):
                _collect(field.get("type"), names, namespace)
        elif kind == "array":
            _collect(schema.get("items"), names, namespace)
        elif kind == "map":
            _collect(schema.get("values"), names, namespace)
        elif isinstance(kind, (dict, list)):
            _collect(kind, names, namespace)


class _Side:
    def __init__(self, schema: Any) -> None:
        self.names: dict[str, Any] = {}
        _collect(schema, self.names)

    def resolve(self, schema: Any) -> Any:
        """A type name to its definition; ``{"type": "int", ...}`` to ``"int"`` (logical types ignored)."""
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return self.names.get(schema, self.names.get(schema.rsplit(".", 1)[-1], schema))
        if isinstance(schema, dict):
            kind = schema.get("type")
            if isinstance(kind, str) and kind in PRIMITIVES:
                return kind
            if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in
                                                  ("record", "error", "enum", "fixed", "array", "map")):
                return self.resolve(kind)
        return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    return "record" if schema.get("type") == "error" else str(schema.get("type"))


def _short(name: Any) -> str:
    return str(name).rsplit(".", 1)[-1]


def _same_name(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    wanted = _short(writer.get("name"))
    return _short(reader.get("name")) == wanted or wanted in {_short(a) for a in reader.get("aliases", ())}


def problems(reader: Any, writer: Any) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer`` (both JSON forms); ``[]`` when it can."""
    out: list[str] = []
    _check(_Side(reader), reader, _Side(writer), writer, "", out, set())
    return out


def _check(rs: _Side, r: Any, ws: _Side, w: Any, path: str, out: list[str], seen: set[tuple[int, int]]) -> None:
    r, w = rs.resolve(r), ws.resolve(w)
    if (id(r), id(w)) in seen:  # a recursive type: checked further up
        return
    seen.add((id(r), id(w)))
    rk, wk = _kind(r), _kind(w)
    where = path or "/"
    if wk == "union":
        for i, branch in enumerate(w):
            _check(rs, r, ws, branch, f"{path}/[{i}]", out, seen)
        return
    if rk == "union":
        for branch in r:
            trial: list[str] = []
            _check(rs, branch, ws, w, path, trial, set(seen))
            if not trial:
                return
        out.append(f"{where}: the reader's union has no branch for the writer's {wk}")
        return
    if rk != wk:
        if wk in PROMOTIONS and rk in PROMOTIONS[wk]:
            return
        out.append(f"{where}: the writer's {wk} cannot be read as {rk}")
        return
    if rk == "array":
        _check(rs, r.get("items"), ws, w.get("items"), f"{path}/items", out, seen)
    elif rk == "map":
        _check(rs, r.get("values"), ws, w.get("values"), f"{path}/values", out, seen)
    elif rk == "fixed":
        if not _same_name(r, w) or r.get("size") != w.get("size"):
            out.append(f"{where}: fixed {w.get('name')}({w.get('size')}) read as {r.get('name')}({r.get('size')})")
    elif rk == "enum":
        if not _same_name(r, w):
            out.append(f"{where}: enum {w.get('name')} read as {r.get('name')}")
        missing = [s for s in w.get("symbols", ()) if s not in r.get("symbols", ())]
        if missing and "default" not in r:
            out.append(f"{where}: the reader's enum {r.get('name')} lacks symbols {missing} and has no default")
    elif rk == "record":
        if not _same_name(r, w):
            out.append(f"{where}: record {w.get('name')} read as {r.get('name')}")
            return
        written = {f["name"]: f for f in w.get("fields", ())}
        for field in r.get("fields", ()):
            match = next((written[n] for n in (field["name"], *field.get("aliases", ())) if n in written), None)
            if match is None:
                if "default" not in field:
                    out.append(f"{path}/{field['name']}: a reader field with no default is not in the writer")
                continue
            _check(rs, field.get("type"), ws, match.get("type"), f"{path}/{field['name']}", out, seen)


def incompatibilities(level: str, new: Any, existing: list[Any]) -> list[str]:
    """What stops ``new`` being registered after ``existing`` (oldest first) under ``level``."""
    level = level.upper()
    if level == "NONE" or not existing:
        return []
    against = existing if level.endswith("_TRANSITIVE") else existing[-1:]
    out: list[str] = []
    for old in against:
        if level.startswith(("BACKWARD", "FULL")):
            out += [f"reading old data with the new schema: {p}" for p in problems(new, old)]
        if level.startswith(("FORWARD", "FULL")):
            out += [f"reading new data with an old schema: {p}" for p in problems(old, new)]
    return out
