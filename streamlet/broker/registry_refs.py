"""Schema references in the embedded Schema Registry: the ``references`` of a request body checked,
and a schema's JSON form with the referenced types written in, for the compatibility checks.

A reference is ``{"name": full type name, "subject": ..., "version": ...}``:
the schema uses the type ``name``, registered as ``version`` of ``subject``.
The registry keeps the references beside the schema text (a schema with
other references is another schema), serves them back with it, and refuses
to delete a version that a registered schema references.
"""

from __future__ import annotations

import copy
from typing import Any

from streamlet.broker.registry_compat import PRIMITIVES

_NAMED = ("record", "error", "enum", "fixed")


def reference_list(raw: Any) -> list[dict[str, Any]]:
    """The ``references`` of a request body as ``[{"name", "subject", "version"}]``; ``ValueError`` saying
    what is wrong when malformed."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("'references' must be a list")
    out = []
    for ref in raw:
        if not isinstance(ref, dict):
            raise ValueError(f"a reference is an object, not {ref!r}")
        name, subject, version = ref.get("name"), ref.get("subject"), ref.get("version")
        if not isinstance(name, str) or not name or not isinstance(subject, str) or not subject:
            raise ValueError(f"reference {ref!r} needs a name and a subject")
        if isinstance(version, bool) or not isinstance(version, int) or (version < 1 and version != -1):
            raise ValueError(f"reference {ref!r} needs a version >= 1 (or -1: the latest)")
        out.append({"name": name, "subject": subject, "version": version})
    return out


def expand(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with each type it uses by a name in ``defs`` (full name → JSON form) written in where it
    is first used: one self-contained JSON form for :mod:`streamlet.broker.registry_compat`."""
    if not defs:
        return schema
    return _walk(copy.deepcopy(schema), defs, None, set())


def _lookup(name: str, namespace: str | None, defs: dict[str, Any]) -> str | None:
    for candidate in ((f"{namespace}.{name}" if namespace and "." not in name else None), name):
        if candidate is not None and candidate in defs:
            return candidate
    return None


def _walk(schema: Any, defs: dict[str, Any], namespace: str | None, written: set[str]) -> Any:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        found = _lookup(schema, namespace, defs)
        if found is None or found in written:
            return schema
        written.add(found)
        return _walk(copy.deepcopy(defs[found]), defs, None, written)
    if isinstance(schema, list):
        return [_walk(branch, defs, namespace, written) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind in _NAMED:
        name = str(schema.get("name", ""))
        ns = schema.get("namespace", namespace)
        full = name if "." in name or not ns else f"{ns}.{name}"
        written.add(full)
        inner = full.rsplit(".", 1)[0] if "." in full else ns
        for field in schema.get("fields", ()):
            if isinstance(field, dict) and "type" in field:
                field["type"] = _walk(field["type"], defs, inner, written)
        return schema
    if kind == "array" and "items" in schema:
        schema["items"] = _walk(schema["items"], defs, namespace, written)
    elif kind == "map" and "values" in schema:
        schema["values"] = _walk(schema["values"], defs, namespace, written)
    elif isinstance(kind, (str, list, dict)):
        schema["type"] = _walk(kind, defs, namespace, written)
    return schema
