"""The data of the embedded Schema Registry: schemas by id, subjects and their versions, compatibility
levels — in memory, thread-safe, with Confluent's error codes (:class:`RegistryFault`)."""

from __future__ import annotations

import threading
from typing import Any

import orjson

from streamlet.broker.registry_compat import LEVELS, incompatibilities

DEFAULT_LEVEL = "BACKWARD"


class RegistryFault(Exception):
    """An answer other than success: HTTP ``status`` and Confluent ``code``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


def subject_not_found(subject: str) -> RegistryFault:
    return RegistryFault(404, 40401, f"Subject '{subject}' not found.")


def _normalized(text: str) -> tuple[str, Any]:
    """``(key, JSON)``: the schema with its JSON normalized (key order, spacing), for identity."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = text.strip()
        if not parsed.isidentifier():
            raise RegistryFault(422, 42201, f"Invalid schema: not JSON: {text[:200]!r}") from None
    return orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS).decode(), parsed


class SchemaStore:
    """Subjects → versions → schema ids; one id per distinct schema across subjects, as Confluent's."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.texts: dict[int, str] = {}        # id -> schema text as first registered
        self.parsed: dict[int, Any] = {}       # id -> JSON form
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

    def subjects_of(self, schema_id: int) -> list[tuple[str, int]]:
        """``(subject, version)`` pairs that hold ``schema_id``."""
        self.schema(schema_id)
        with self.lock:
            return [(s, v) for s, vs in sorted(self.subjects.items()) for v, sid in vs if sid == schema_id]

    def all_subjects(self) -> list[str]:
        with self.lock:
            return sorted(s for s, vs in self.subjects.items() if vs)

    def lookup(self, subject: str, text: str) -> tuple[int, int]:
        """``(version, id)`` of ``text`` under ``subject``."""
        key, _ = _normalized(text)
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

    def check(self, subject: str, text: str, version: str | None) -> list[str]:
        """Why ``text`` is not compatible with ``version`` of ``subject`` (all versions when ``None``)."""
        _, parsed = _normalized(text)
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
    def register(self, subject: str, text: str, schema_type: str = "AVRO") -> tuple[int, int]:
        """``(version, id)`` of ``text`` under ``subject``, registered now if new (409 when the subject's
        compatibility level forbids it)."""
        if (schema_type or "AVRO").upper() != "AVRO":
            raise RegistryFault(422, 42201, f"Invalid schema: the embedded registry serves AVRO only, "
                                            f"not {schema_type}")
        key, parsed = _normalized(text)
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
            version = versions[-1][0] + 1 if versions else 1
            versions.append((version, sid))
            return version, sid

    def delete_subject(self, subject: str) -> list[int]:
        with self.lock:
            found = self.subjects.pop(subject, None)
        if not found:
            raise subject_not_found(subject)
        return [v for v, _ in found]

    def delete_version(self, subject: str, version: str) -> int:
        v, _ = self.version(subject, version)
        with self.lock:
            self.subjects[subject] = [(x, s) for x, s in self.subjects[subject] if x != v]
        return v
