"""The data of the embedded Schema Registry: schemas by id, subjects and their versions, compatibility
levels — in memory, thread-safe, with Confluent's error codes (:class:`RegistryFault`)."""

from __future__ import annotations

import threading
from typing import Any

import orjson

from streamlet.broker.registry_compat import LEVELS, incompatibilities
from streamlet.broker.registry_refs import expand

DEFAULT_LEVEL = "BACKWARD"


class RegistryFault(Exception):
    """An answer other than success: HTTP ``status`` and Confluent ``code``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


def subject_not_found(subject: str) -> RegistryFault:
    return RegistryFault(404, 40401, f"Subject '{subject}' not found.")


def _normalized(text: str, references: list[dict[str, Any]] | None = None) -> tuple[str, Any]:
    """``(key, JSON)``: the schema with its JSON normalized (key order, spacing) and its references, for
    identity (the same text with other references is another schema)."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = text.strip()
        if not parsed.isidentifier():
            raise RegistryFault(422, 42201, f"Invalid schema: not JSON: {text[:200]!r}") from None
    key = orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS).decode()
    if references:
        key += " references " + orjson.dumps(references, option=orjson.OPT_SORT_KEYS).decode()
    return key, parsed


class SchemaStore:
    """Subjects → versions → schema ids; one id per distinct schema across subjects, as Confluent's."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.texts: dict[int, str] = {}        # id -> schema text as first registered
        self.parsed: dict[int, Any] = {}       # id -> JSON form, referenced types written in
        self.refs: dict[int, list[dict[str, Any]]] = {}  # id -> its references (none: absent)
        self.ids: dict[str, int] = {}          # normalized text -> id
        self.subjects: dict[str, list[tuple[int, int]]] = {}  # subject -> [(version, id)], oldest first
        self.levels: dict[str | None, str] = {None: DEFAULT_LEVEL}

    # -- reading ----------------------------------------------------------------------------------
    def versions(self, subject: str) -> list[tuple[int, int]]:
        with self.lock:
            found = self.subjects.get(subject)
            if not found:
                raise subject_not_found(subject)
            return list(found)

    def version(self, subject: str, version: str) -> tuple[int, int]:
        """``(version, id)`` of ``version`` (a number, ``latest`` or ``-1``) of ``subject``."""
        found = self.versions(subject)
        if version in ("latest", "-1"):
            return found[-1]
        if not version.isdigit() or int(version) < 1:
            raise RegistryFault(422, 42202, f"The specified version '{version}' is not a valid version id.")
        for v, sid in found:
            if v == int(version):
                return v, sid
        raise RegistryFault(404, 40402, f"Version {version} not found.")

    def schema(self, schema_id: int) -> str:
        with self.lock:
            if schema_id not in self.texts:
                raise RegistryFault(404, 40403, f"Schema {schema_id} not found")
            return self.texts[schema_id]

    def references(self, schema_id: int) -> list[dict[str, Any]]:
        """The references of ``schema_id`` (``{"name", "subject", "version"}``), as registered."""
        self.schema(schema_id)
        with self.lock:
            return list(self.refs.get(schema_id, ()))

    def referenced_by(self, subject: str, version: str) -> list[int]:
        """The ids of the schemas whose references name ``version`` of ``subject``."""
        v, _ = self.version(subject, version)
        return self._users(subject, [v])

    def _users(self, subject: str, versions: list[int]) -> list[int]:
        """The ids, still registered under a subject, whose references name one of ``versions`` of
        ``subject``."""
        with self.lock:
            live = {sid for vs in self.subjects.values() for _, sid in vs}
            return sorted(sid for sid, refs in self.refs.items() if sid in live and
                          any(r["subject"] == subject and r["version"] in versions for r in refs))

    def _expanded(self, parsed: Any, references: list[dict[str, Any]]) -> Any:
        """``parsed`` with its referenced types written in (422 when a reference is not registered)."""
        defs: dict[str, Any] = {}
        for ref in references:
            try:
                _, sid = self.version(ref["subject"], str(ref["version"]))
            except RegistryFault:
                raise RegistryFault(422, 42201, f"Invalid schema: reference {ref['name']!r} to version "
                                                f"{ref['version']} of subject {ref['subject']!r}: not found") from None
            with self.lock:
                defs[ref["name"]] = self.parsed[sid]
        return expand(parsed, defs)

    def subjects_of(self, schema_id: int) -> list[tuple[str, int]]:
        """``(subject, version)`` pairs that hold ``schema_id``."""
        self.schema(schema_id)
        with self.lock:
            return [(s, v) for s, vs in sorted(self.subjects.items()) for v, sid in vs if sid == schema_id]

    def all_subjects(self) -> list[str]:
        with self.lock:
            return sorted(s for s, vs in self.subjects.items() if vs)

    def lookup(self, subject: str, text: str, references: list[dict[str, Any]] | None = None) -> tuple[int, int]:
        """``(version, id)`` of ``text`` (with ``references``) under ``subject``."""
        key, _ = _normalized(text, references)
        found = self.versions(subject)
        with self.lock:
            sid = self.ids.get(key)
        for v, s in found:
            if s == sid:
                return v, s
        raise RegistryFault(404, 40403, "Schema not found")

    # -- compatibility ----------------------------------------------------------------------------
    def level(self, subject: str | None, default_to_global: bool = True) -> str:
        with self.lock:
            if subject is not None and subject not in self.levels:
                if not default_to_global:
                    raise RegistryFault(404, 40408, f"Subject '{subject}' does not have subject-level "
                                                    "compatibility configured")
                subject = None
            return self.levels[subject]

    def set_level(self, subject: str | None, level: Any) -> str:
        level = str(level or "").upper()
        if level not in LEVELS:
            raise RegistryFault(422, 42203, f"Invalid compatibility level {level!r}: one of {', '.join(LEVELS)}")
        with self.lock:
            self.levels[subject] = level
        return level

    def delete_level(self, subject: str | None) -> str:
        with self.lock:
            old = self.levels.get(subject, self.levels[None])
            if subject is None:
                self.levels[None] = DEFAULT_LEVEL
            else:
                self.levels.pop(subject, None)
            return old

    def check(self, subject: str, text: str, version: str | None,
              references: list[dict[str, Any]] | None = None) -> list[str]:
        """Why ``text`` is not compatible with ``version`` of ``subject`` (all versions when ``None``)."""
        _, parsed = _normalized(text)
        parsed = self._expanded(parsed, references or [])
        if version is None:
            targets = [sid for _, sid in self.versions(subject)]
        else:
            targets = [self.version(subject, version)[1]]
        level = self.level(subject)
        with self.lock:
            existing = [self.parsed[sid] for sid in targets]
        if level in ("NONE",):
            return []
        base = level.replace("_TRANSITIVE", "")
        return incompatibilities(base + "_TRANSITIVE", parsed, existing)

    # -- writing ----------------------------------------------------------------------------------
    def register(self, subject: str, text: str, schema_type: str = "AVRO",
                 references: list[dict[str, Any]] | None = None) -> tuple[int, int]:
        """``(version, id)`` of ``text`` (using the types of ``references``) under ``subject``, registered
        now if new (409 when the subject's compatibility level forbids it; 422 when a reference is not
        registered)."""
        if (schema_type or "AVRO").upper() != "AVRO":
            raise RegistryFault(422, 42201, f"Invalid schema: the embedded registry serves AVRO only, "
                                            f"not {schema_type}")
        key, parsed = _normalized(text, references)
        parsed = self._expanded(parsed, references or [])
        level = self.level(subject)
        with self.lock:
            versions = self.subjects.setdefault(subject, [])
            sid = self.ids.get(key)
            for v, s in versions:
                if s == sid:
                    return v, s
            problems = incompatibilities(level, parsed, [self.parsed[s] for _, s in versions])
            if problems:
                raise RegistryFault(409, 409, f"Schema being registered is incompatible with an earlier schema "
                                              f"for subject \"{subject}\" ({level}): " + "; ".join(problems))
            if sid is None:
                sid = max(self.texts, default=0) + 1
                self.ids[key], self.texts[sid], self.parsed[sid] = sid, text, parsed
                if references:
                    self.refs[sid] = list(references)
            version = versions[-1][0] + 1 if versions else 1
            versions.append((version, sid))
            return version, sid

    def _refuse_if_referenced(self, subject: str, versions: list[int]) -> None:
        users = self._users(subject, versions)
        if users:
            raise RegistryFault(422, 42206, f"One or more references exist to the schema {{subject={subject}, "
                                            f"versions={versions}}}: schema ids {users} use it")

    def delete_subject(self, subject: str) -> list[int]:
        self._refuse_if_referenced(subject, [v for v, _ in self.versions(subject)])
        with self.lock:
            found = self.subjects.pop(subject, None)
        if not found:
            raise subject_not_found(subject)
        return [v for v, _ in found]

    def delete_version(self, subject: str, version: str) -> int:
        v, _ = self.version(subject, version)
        self._refuse_if_referenced(subject, [v])
        with self.lock:
            self.subjects[subject] = [(x, s) for x, s in self.subjects[subject] if x != v]
        return v
