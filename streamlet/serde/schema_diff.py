"""How a producer's Avro schema differs from the registry's: harmless differences a generic value
may follow, and blocking ones (DESIGN §7).

    >>> ours = {"type": "record", "name": "Order", "fields": [
    ...     {"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}
    >>> theirs = {"type": "record", "name": "OrderV2", "namespace": "ksql", "fields": [
    ...     {"name": "amount", "type": "double"}, {"name": "id", "type": "string"},
    ...     {"name": "note", "type": ["null", "string"], "default": None}]}
    >>> d = diff_schemas(ours, theirs)
    >>> d.harmless, d.blocking
    (['record name Order -> ksql.OrderV2', 'field order (id, amount) -> (amount, id, note)', 'added nullable field note'], [])

Harmless: field order, an added field whose type is a union with ``null``,
a record's full name or namespace. Blocking: any type or logical-type change
(decimal precision and scale, fixed size and enum symbols included), a field
the registry's schema lacks (re-mapping would drop its data) and an added
field that is not nullable (a required field the value does not have).
Docs, aliases and defaults of nullable fields are not differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastavro import parse_schema

_PRIMITIVE_KEYS = ("logicalType", "precision", "scale", "size")


@dataclass
class SchemaDiff:
    """The differences from ``ours`` to ``theirs``; ``identical`` when there are none."""

    harmless: list[str] = field(default_factory=list)
    blocking: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.harmless and not self.blocking

    @property
    def followable(self) -> bool:
        """Only harmless differences: a generic value may be written with ``theirs``."""
        return not self.blocking

    def describe(self) -> str:
        parts = [f"blocking: {'; '.join(self.blocking)}"] if self.blocking else []
        if self.harmless:
            parts.append(f"harmless: {'; '.join(self.harmless)}")
        return " | ".join(parts) or "no difference"


def diff_schemas(ours: Any, theirs: Any) -> SchemaDiff:
    """Compare two schemas (JSON forms or fastavro-parsed)."""
    ours, theirs = _parsed(ours), _parsed(theirs)
    out = SchemaDiff()
    _Walk(ours, theirs, out).compare(ours, theirs, "")
    return out


def _parsed(schema: Any) -> Any:
    if isinstance(schema, dict) and schema.get("__fastavro_parsed"):
        return schema
    return parse_schema(schema)


def _named(schema: Any) -> dict[str, Any]:
    return schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}


class _Walk:
    def __init__(self, ours: Any, theirs: Any, out: SchemaDiff) -> None:
        self.ours_named, self.theirs_named, self.out = _named(ours), _named(theirs), out
        self.seen: set[tuple[str, str]] = set()

    def _resolve(self, schema: Any, named: dict[str, Any]) -> Any:
        return named.get(schema, schema) if isinstance(schema, str) else schema

    def compare(self, ours: Any, theirs: Any, path: str) -> None:
        a, b = self._resolve(ours, self.ours_named), self._resolve(theirs, self.theirs_named)
        where = f" at {path}" if path else ""
        if isinstance(a, list) or isinstance(b, list):
            self._union(a, b, path, where)
            return
        ta = a.get("type") if isinstance(a, dict) else a
        tb = b.get("type") if isinstance(b, dict) else b
        if ta != tb:
            self.out.blocking.append(f"type {_show(a)} -> {_show(b)}{where}")
            return
        if ta == "record":
            if (a.get("name"), b.get("name")) in self.seen:
                return  # a recursive type already being compared
            self.seen.add((a.get("name"), b.get("name")))
            self._record(a, b, path)
        elif ta == "enum":
            if list(a.get("symbols", ())) != list(b.get("symbols", ())):
                if set(a.get("symbols", ())) == set(b.get("symbols", ())):
                    self.out.harmless.append(f"enum symbol order{where}")
                else:
                    self.out.blocking.append(f"enum symbols {a.get('symbols')} -> {b.get('symbols')}{where}")
        elif ta == "array":
            self.compare(a["items"], b["items"], f"{path}[]")
        elif ta == "map":
            self.compare(a["values"], b["values"], f"{path}{{}}")
        for key in _PRIMITIVE_KEYS:
            va = a.get(key) if isinstance(a, dict) else None
            vb = b.get(key) if isinstance(b, dict) else None
            if va != vb:
                what = "logical type" if key == "logicalType" else key
                self.out.blocking.append(f"{what} {va} -> {vb}{where}")

    def _union(self, a: Any, b: Any, path: str, where: str) -> None:
        if not (isinstance(a, list) and isinstance(b, list)):
            self.out.blocking.append(f"type {_show(a)} -> {_show(b)}{where}")
            return
        if len(a) != len(b):
            self.out.blocking.append(f"union {_show(a)} -> {_show(b)}{where}")
            return
        keys_b = {_branch_key(x, self.theirs_named): x for x in b}
        for x in a:
            match = keys_b.get(_branch_key(x, self.ours_named))
            if match is None:
                self.out.blocking.append(f"union {_show(a)} -> {_show(b)}{where}")
                return
            self.compare(x, match, path)
        if [_branch_key(x, self.ours_named) for x in a] != [_branch_key(x, self.theirs_named) for x in b]:
            self.out.harmless.append(f"union branch order{where}")

    def _record(self, a: dict[str, Any], b: dict[str, Any], path: str) -> None:
        where = f" at {path}" if path else ""
        if a.get("name") != b.get("name"):
            self.out.harmless.append(f"record name {a.get('name')} -> {b.get('name')}{where}")
        fa = {f["name"]: f for f in a.get("fields", ())}
        fb = {f["name"]: f for f in b.get("fields", ())}
        order_a = [n for n in fa if n in fb]
        order_b = [n for n in fb if n in fa]
        if order_a != order_b:
            self.out.harmless.append(f"field order ({', '.join(fa)}) -> ({', '.join(fb)}){where}")
        for name, f in fa.items():
            sub = f"{path}.{name}" if path else name
            if name not in fb:
                self.out.blocking.append(f"field {sub} missing in the registry's schema (its data would be "
                                         "dropped)")
            else:
                self.compare(f["type"], fb[name]["type"], sub)
        for name, f in fb.items():
            if name in fa:
                continue
            sub = f"{path}.{name}" if path else name
            if isinstance(f["type"], list) and "null" in f["type"]:
                self.out.harmless.append(f"added nullable field {sub}")
            else:
                self.out.blocking.append(f"added required field {sub} ({_show(f['type'])}) the value does not "
                                         "have")


def _branch_key(schema: Any, named: dict[str, Any]) -> str:
    """A union branch's identity: its type, or ``record`` / ``enum`` / ``fixed`` (one per union in
    practice, names aside), so that a renamed record still matches its branch."""
    resolved = named.get(schema, schema) if isinstance(schema, str) else schema
    if isinstance(resolved, dict):
        return str(resolved.get("logicalType") or resolved.get("type"))
    return str(resolved)


def _show(schema: Any) -> str:
    if isinstance(schema, dict):
        t = schema.get("type")
        if t in ("record", "enum", "fixed"):
            return f"{t} {schema.get('name')}"
        if schema.get("logicalType"):
            return f"{t}({schema['logicalType']})"
        return str(t)
    if isinstance(schema, list):
        return "[" + ", ".join(_show(x) for x in schema) + "]"
    return str(schema)
