"""Avro schema references (Confluent Schema Registry): a schema that uses named types registered
under other subjects.

A registered schema carries ``references``: ``(name, subject, version)``
triples, each naming a type (its full name) and where it is registered. To
parse such a schema, every referenced schema is fetched from the registry —
recursively, since a referenced schema may have references of its own — and
given to fastavro as named types (``parse_schema(schema, named_schemas)``).
:class:`ReferenceResolver` fetches each ``(subject, version)`` once and keeps
it; parsing is then local.

    >>> refs = schema_references([("shop.Customer", "customer-value", 1)])
    >>> refs[0].name, refs[0].subject, refs[0].version
    ('shop.Customer', 'customer-value', 1)
"""

from __future__ import annotations

import threading
from typing import Any, Iterable

import orjson
from confluent_kafka.schema_registry import SchemaReference
from fastavro import parse_schema

from streamlet.errors import ConfigError, SchemaRegistryError
from streamlet.serde.avro_codec import with_names
from streamlet.serde.registry import is_not_found, registry_error

#: what a reference may be given as: confluent-kafka's ``SchemaReference``, ``(name, subject, version)``
#: or a dict ``{"name": ..., "subject": ..., "version": ...}`` (the REST API's form)
Reference = Any


def schema_references(references: Iterable[Reference] | None) -> list[SchemaReference]:
    """``references`` as confluent-kafka ``SchemaReference`` objects (``[]`` for ``None``)."""
    out: list[SchemaReference] = []
    for ref in references or ():
        if isinstance(ref, SchemaReference):
            name, subject, version = ref.name, ref.subject, ref.version
        elif isinstance(ref, dict):
            name, subject, version = ref.get("name"), ref.get("subject"), ref.get("version")
        elif isinstance(ref, (tuple, list)) and len(ref) == 3:
            name, subject, version = ref
        else:
            raise ConfigError(f"a schema reference is a SchemaReference, a (name, subject, version) tuple or a "
                              f"dict with those keys, not {ref!r}")
        if not isinstance(name, str) or not name or not isinstance(subject, str) or not subject:
            raise ConfigError(f"schema reference {ref!r} needs a type name and a subject (non-empty strings)")
        if isinstance(version, bool) or not isinstance(version, int) or (version < 1 and version != -1):
            raise ConfigError(f"schema reference {ref!r}: the version is a number >= 1 (or -1: the latest)")
        out.append(SchemaReference(name, subject, version))
    return out


def full_name(schema: Any) -> str | None:
    """The full name of a named schema's JSON form (record, enum, fixed), else ``None``."""
    if not isinstance(schema, dict) or schema.get("type") not in ("record", "enum", "fixed", "error"):
        return None
    name, namespace = str(schema.get("name", "")), schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text  # a bare type name


class ReferenceResolver:
    """Parses schemas with references, fetching each referenced ``(subject, version)`` once."""

    def __init__(self) -> None:
        #: (subject, version) -> (JSON form, its own references)
        self._fetched: dict[tuple[str, int], tuple[Any, list[SchemaReference]]] = {}
        self._lock = threading.Lock()

    def parse(self, schema: Any, references: list[SchemaReference], client: Any, url: str) -> Any:
        """fastavro's parsed form of ``schema`` (JSON form) whose named types include ``references``'."""
        named: dict[str, Any] = {}
        done: set[tuple[str, int]] = set()
        for ref in references:
            self._add(ref, named, done, (), client, url)
        try:
            return with_names(parse_schema(schema, named), named)
        except Exception as exc:
            raise SchemaRegistryError(
                f"the schema does not parse with its references {_describe(references)}: "
                f"{type(exc).__name__}: {exc}", url=url) from exc

    def _add(self, ref: SchemaReference, named: dict[str, Any], done: set[tuple[str, int]],
             chain: tuple[tuple[str, int], ...], client: Any, url: str) -> None:
        key = (str(ref.subject), int(ref.version))
        if key in done:
            return
        if key in chain:
            path = " -> ".join(f"{s} v{v}" for s, v in chain + (key,))
            raise SchemaRegistryError(f"schema references form a cycle: {path}", subject=key[0], url=url)
        schema, nested = self._fetch(key, client, url)
        for sub in nested:
            self._add(sub, named, done, chain + (key,), client, url)
        try:
            parse_schema(schema, named)
        except Exception as exc:
            raise SchemaRegistryError(
                f"referenced schema {ref.name!r} (subject {key[0]!r} version {key[1]}) does not parse: "
                f"{type(exc).__name__}: {exc}", subject=key[0], url=url) from exc
        done.add(key)

    def _fetch(self, key: tuple[str, int], client: Any, url: str) -> tuple[Any, list[SchemaReference]]:
        with self._lock:
            found = self._fetched.get(key)
        if found is not None:
            return found
        subject, version = key
        try:
            registered = client.get_version(subject, "latest" if version == -1 else version)
        except Exception as exc:
            if is_not_found(exc):
                raise SchemaRegistryError(
                    f"a referenced schema is not in the schema registry at {url}: subject {subject!r} "
                    f"version {version} ({exc}); register it before the schemas that use it",
                    subject=subject, url=url) from exc
            raise registry_error(exc, f"getting referenced subject {subject!r} version {version}", url,
                                 subject=subject) from exc
        if registered is None:  # confluent-kafka's mock answers None for an unknown version
            raise SchemaRegistryError(
                f"a referenced schema is not in the schema registry at {url}: subject {subject!r} version "
                f"{version}; register it before the schemas that use it", subject=subject, url=url)
        schema = registered.schema
        if (schema.schema_type or "AVRO") != "AVRO":
            raise SchemaRegistryError(f"referenced subject {subject!r} version {version} is a "
                                      f"{schema.schema_type} schema, not Avro", subject=subject, url=url)
        found = (_json(schema.schema_str), schema_references(schema.references))
        with self._lock:
            self._fetched[key] = found
        return found


def _describe(references: list[SchemaReference]) -> str:
    return ", ".join(f"{r.name} ({r.subject} v{r.version})" for r in references)
