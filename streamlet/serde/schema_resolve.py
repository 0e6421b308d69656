"""The On-Error Resolve policy at work: classify a failed send, look the subject up once, follow a
harmless change or block (DESIGN §7; settings in :mod:`streamlet.serde.schema_policy`).

Nothing here runs in the normal path: the serde calls it only when a lookup,
a registration or a write failed, or when the broker rejected a record it
wrote. Each step is one structured log line (logger ``streamlet.schema``,
``extra={"event": ..., ...}``) and one counter of :attr:`SchemaResolver.metrics`:
``sr.lookup.ok`` / ``sr.lookup.fail``, ``schema.conflict.key`` /
``schema.conflict.value``, ``produce.retry.on_error``, ``produce.blocked``,
``produce.circuit.open``, ``produce.held`` (a lenient wait), labelled with the
topic, the class, the subject, the resolved subject, the version and the
schema id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional

from streamlet.errors import (
    InvalidRecordDataError,
    SchemaCircuitOpenError,
    SchemaConflictError,
    SchemaNotRegisteredError,
    SchemaRegistryError,
    SchemaRegistryUnavailableError,
)
from streamlet.metrics import Metrics
from streamlet.serde.registry import is_not_found, not_registered, registry_error
from streamlet.serde.schema_diff import diff_schemas
from streamlet.serde.schema_policy import SchemaPolicy

if TYPE_CHECKING:
    from streamlet.serde.avro import AvroSerde

log = logging.getLogger("streamlet.schema")

#: (header, parsed writer schema): an entry of the serde's writer cache
Writer = tuple[bytes, Any]

_SUBJECT_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _subject_lock(url: str, subject: str) -> threading.Lock:
    """One lock per registry and subject in this process: one lookup at a time, however many tasks
    and serdes hit the same conflict (single flight)."""
    with _LOCKS_LOCK:
        lock = _SUBJECT_LOCKS.get((url, subject))
        if lock is None:
            lock = _SUBJECT_LOCKS[(url, subject)] = threading.Lock()
        return lock


def schema_id_of(header: bytes) -> int:
    return int.from_bytes(header[1:5], "big")


class SchemaResolver:
    """The policy's state for one serde: counters, the breaker per topic x subject, the schemas by
    id this serde wrote with (to re-map a rejected record)."""

    def __init__(self, serde: "AvroSerde", policy: SchemaPolicy, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.serde, self.policy = serde, policy
        self.metrics = Metrics()
        self.clock, self.sleep = clock, sleep
        #: schema id -> parsed schema this serde wrote with
        self.written: dict[int, Any] = {}
        self._conflicts: dict[tuple[str, str], deque[float]] = {}
        self._open_until: dict[tuple[str, str], float] = {}
        #: the (topic, field) whose entry was just resolved: its first write is the re-send
        self.resend: Optional[tuple[str, str]] = None
        #: (topic, schema id) of records the broker rejected (logged once each)
        self._rejected_ids: set[tuple[str, int]] = set()
        self._open_logged: set[tuple[str, str]] = set()

    # -- logging and counting ----------------------------------------------------------------------
    def _event(self, name: str, level: int | None, message: str, **labels: Any) -> None:
        """Count ``name``; log it too unless ``level`` is None (the records of a burst after its first)."""
        labels = {k: v for k, v in labels.items() if v is not None}
        self.metrics.inc(name, **labels)
        if level is None:
            return
        text = " ".join(f"{k}={v}" for k, v in labels.items())
        log.log(level, "%s %s: %s", name, text, message, extra={"event": name, **labels})

    def _subject_for_lookup(self, topic: str, field: str, subject: str) -> str:
        fn = self.policy.subject_resolver
        return subject if fn is None else str(fn(topic, field, self.serde.record_name))

    # -- the breaker -------------------------------------------------------------------------------
    def check_open(self, topic: str, subject: str) -> None:
        """Raise :class:`SchemaCircuitOpenError` while the breaker of ``topic`` x ``subject`` is open."""
        until = self._open_until.get((topic, subject))
        if until is None:
            return
        if self.clock() < until:
            first = (topic, subject) not in self._open_logged
            self._open_logged.add((topic, subject))
            self._event("produce.blocked", logging.WARNING if first else None, "the circuit is open", topic=topic,
                        subject=subject, error_class="schema.conflict")
            breaker = self.policy.breaker
            assert breaker is not None
            raise SchemaCircuitOpenError(
                f"[schema.conflict] sends to topic {topic!r} with subject {subject!r} are rejected: the circuit "
                f"breaker opened after {breaker.threshold} schema conflicts within {breaker.window:g} s; it "
                f"closes {until - self.clock():.0f} s from now. Check the subject's latest schema in the "
                "registry", subject=subject, url=self.serde.url)
        del self._open_until[(topic, subject)]  # half-open: the next lookup decides
        self._open_logged.discard((topic, subject))

    def _conflict_seen(self, topic: str, subject: str) -> None:
        breaker = self.policy.breaker
        if breaker is None:
            return
        now = self.clock()
        seen = self._conflicts.setdefault((topic, subject), deque())
        seen.append(now)
        while seen and seen[0] < now - breaker.window:
            seen.popleft()
        if len(seen) >= breaker.threshold:
            seen.clear()
            self._open_until[(topic, subject)] = now + breaker.cooldown
            self.serde.forget_writer(topic)
            self._event("produce.circuit.open", logging.ERROR,
                        f"{breaker.threshold} conflicts within {breaker.window:g} s: sends rejected for "
                        f"{breaker.cooldown:g} s", topic=topic, subject=subject)

    # -- classification ----------------------------------------------------------------------------
    def lookup_failed(self, topic: str, field: str, subject: str, exc: SchemaRegistryError,
                      lookup: Callable[[], Writer]) -> Writer:
        """A cache miss's lookup (or registration) failed with ``exc``: follow, hold or block."""
        if not self.policy.applies_to(topic):
            raise exc
        cls = exc.error_class
        if cls == "schema.conflict":
            self._event(f"schema.conflict.{field}", logging.WARNING, str(exc), topic=topic, subject=subject,
                        error_class=cls)
            return self._conflict(topic, field, subject, exc)
        self._event("sr.lookup.fail", logging.WARNING, str(exc), topic=topic, subject=subject, error_class=cls)
        if self.policy.schema_check == "lenient" and self.policy.follow:
            return self._hold(topic, field, subject, exc, lookup)
        self._blocked(topic, subject, cls, "strict: an unreachable registry blocks at once")
        raise exc

    def write_failed(self, topic: str, field: str, header: bytes, exc: Exception) -> SchemaRegistryError | \
            InvalidRecordDataError:
        """The error for a value fastavro could not write: ``data.invalid``, or a failed re-send."""
        schema_id = schema_id_of(header)
        subject = self.serde.subject(topic, field)
        detail = f"{type(exc).__name__}: {exc}"
        if self.resend == (topic, field):
            self._blocked(topic, subject, "schema.conflict", f"the re-send with schema id {schema_id} failed: "
                          f"{detail}", schema_id=schema_id)
            return SchemaConflictError(
                f"[schema.conflict] the record for topic {topic!r} was re-sent with the registry's schema id "
                f"{schema_id} of subject {subject!r} and that failed too ({detail}): blocked",
                subject=subject, schema_id=schema_id, url=self.serde.url)
        if self.policy.applies_to(topic):
            self._blocked(topic, subject, "data.invalid", detail, schema_id=schema_id)
        return InvalidRecordDataError(
            f"[data.invalid] {self.serde.name} could not serialize the {field} for topic {topic!r} with schema "
            f"id {schema_id}: {detail}. The value does not fit its schema (a missing required field, a wrong "
            "type or logical type): fix the data or the schema; the registry was not asked")

    def _blocked(self, topic: str, subject: str, cls: str, why: str, **labels: Any) -> None:
        self._event("produce.blocked", logging.ERROR, why, topic=topic, subject=subject, error_class=cls, **labels)

    # -- schema.conflict ---------------------------------------------------------------------------
    def _conflict(self, topic: str, field: str, subject: str, exc: SchemaRegistryError) -> Writer:
        serde = self.serde
        if not self.policy.follow:
            self._blocked(topic, subject, "schema.conflict", "observe only (follow=False)")
            raise exc
        if serde.parsed is None:
            self._blocked(topic, subject, "schema.conflict", "the serde has no schema of its own to re-map")
            raise exc
        entry = self.follow_latest(topic, field, subject, serde.parsed, exc)
        if self.policy.max_resends < 1:
            serde.set_writer(topic, field, entry)  # the next records follow
            self._blocked(topic, subject, "schema.conflict", "followed; max_resends=0 blocks this record")
            raise SchemaConflictError(
                f"[schema.conflict] topic {topic!r} now follows subject {subject!r} schema id "
                f"{schema_id_of(entry[0])}; this record is blocked (max_resends=0)", subject=subject,
                schema_id=schema_id_of(entry[0]), url=serde.url)
        self.resend = (topic, field)
        return entry

    def follow_latest(self, topic: str, field: str, subject: str, ours: Any, cause: Exception) -> Writer:
        """Look the subject's latest schema up (single flight), compare and return the writer entry to
        follow; raise :class:`SchemaConflictError` with the diff when it may not be followed."""
        resolved = self._subject_for_lookup(topic, field, subject)
        self._conflict_seen(topic, subject)
        try:
            latest = self._latest(topic, resolved, subject)
        except SchemaNotRegisteredError:
            if isinstance(cause, SchemaRegistryError):
                raise cause from None  # nothing to follow: the original refusal says more
            raise
        return self.judge(topic, field, subject, resolved, latest, ours, cause)

    def judge(self, topic: str, field: str, subject: str, resolved: str, latest: Any, ours: Any,
              cause: Exception | None) -> Writer:
        """The writer entry of the registry's ``latest`` when ``ours`` may follow it; else raise
        :class:`SchemaConflictError` with the diff."""
        version, schema_id = int(latest.version), int(latest.schema_id)
        theirs = self.serde.parse_registered(latest.schema.schema_str, latest.schema.references)
        diff = diff_schemas(ours, theirs)
        labels = dict(resolved_subject=resolved, version=version, schema_id=schema_id)
        why = None
        if diff.blocking:
            why = "the registry's schema differs in ways no re-map may follow"
        elif field == "key":
            why = "keys never follow a changed schema (their bytes choose the partition)"
        elif self.serde.record_type is not None:
            why = f"specific records ({self.serde.record_type.__name__}) never follow a changed schema"
        if why is not None:
            self._blocked(topic, subject, "schema.conflict", f"{why}: {diff.describe()}", **labels)
            raise SchemaConflictError(
                f"[schema.conflict] the {field} schema for topic {topic!r} conflicts with the latest of subject "
                f"{resolved!r} (version {version}, id {schema_id}): {why}. Diff: {diff.describe()}"
                + (f". Cause: {cause}" if cause is not None else ""), diff=diff.blocking + diff.harmless,
                version=version, resolved_subject=resolved, subject=subject, schema_id=schema_id,
                url=self.serde.url)
        self._event("produce.retry.on_error", logging.WARNING,
                    f"following the registry's schema ({diff.describe()})", topic=topic, subject=subject, **labels)
        entry = (self.serde.header(schema_id), theirs)
        self.written[schema_id] = theirs
        return entry

    def _latest(self, topic: str, resolved: str, subject: str) -> Any:
        """The subject's latest registered schema, asked of the registry (not its client cache)."""
        client = self.serde.client
        with _subject_lock(self.serde.url, resolved):
            clear = getattr(client, "clear_latest_caches", None)
            if clear is not None:
                clear()
            delays = self.policy.schema_lookup_backoff.delays() if self.policy.schema_check == "lenient" \
                else iter(())
            while True:
                try:
                    latest = client.get_latest_version(resolved)
                except Exception as exc:
                    error = not_registered(resolved, self.serde.url, exc) if is_not_found(exc) else \
                        registry_error(exc, f"getting the latest schema of subject {resolved!r}", self.serde.url,
                                       subject=resolved)
                    self._event("sr.lookup.fail", logging.WARNING, str(error), topic=topic, subject=subject,
                                resolved_subject=resolved, error_class=error.error_class)
                    delay = next(delays, None) if isinstance(error, SchemaRegistryUnavailableError) else None
                    if delay is None:
                        self._blocked(topic, subject, error.error_class, "the latest schema could not be read")
                        raise error from exc
                    self._event("produce.held", logging.WARNING, f"lenient: retrying in {delay:g} s",
                                topic=topic, subject=subject)
                    self.sleep(delay)
                    continue
                self._event("sr.lookup.ok", logging.INFO, "latest schema read", topic=topic, subject=subject,
                            resolved_subject=resolved, version=latest.version, schema_id=latest.schema_id)
                return latest

    # -- sr.unreachable under lenient ----------------------------------------------------------------
    def _hold(self, topic: str, field: str, subject: str, exc: SchemaRegistryError,
              lookup: Callable[[], Writer]) -> Writer:
        """Hold the record (send nothing) and retry the lookup; re-send once it is verified."""
        started = self.clock()
        for delay in self.policy.schema_lookup_backoff.delays():
            self._event("produce.held", logging.WARNING,
                        f"lenient: the registry is unreachable; holding the record, retrying in {delay:g} s "
                        f"({self.clock() - started:.1f} s held)", topic=topic, subject=subject)
            self.sleep(delay)
            try:
                entry = lookup()
            except SchemaRegistryUnavailableError as again:
                self._event("sr.lookup.fail", logging.WARNING, str(again), topic=topic, subject=subject,
                            error_class=again.error_class)
                exc = again
                continue
            except SchemaRegistryError as conflict:
                self._event(f"schema.conflict.{field}", logging.WARNING, str(conflict), topic=topic,
                            subject=subject, error_class=conflict.error_class)
                return self._conflict(topic, field, subject, conflict)
            self._event("sr.lookup.ok", logging.INFO, "the registry answered; re-sending the held record",
                        topic=topic, subject=subject, schema_id=schema_id_of(entry[0]))
            self._event("produce.retry.on_error", logging.INFO, "re-sent after the registry came back",
                        topic=topic, subject=subject, schema_id=schema_id_of(entry[0]))
            return entry
        self._blocked(topic, subject, "sr.unreachable",
                      f"lenient: gave up after {self.policy.schema_lookup_backoff.give_up_after:g} s")
        raise exc

    # -- a record the broker rejected ----------------------------------------------------------------
    def rejected(self, topic: str, data: bytes, reason: str, memo: dict[Any, Any] | None = None
                 ) -> Optional[bytes]:
        """The bytes to re-send for a value the broker rejected (``None``: not this policy's to
        handle); raises :class:`SchemaConflictError` when it must be blocked. ``memo``, shared by the
        records of one burst, keeps the verdict per schema id: one lookup for the whole burst."""
        serde = self.serde
        if not self.policy.applies_to(topic) or len(data) < 5 or data[0] != 0:
            return None
        schema_id = schema_id_of(data[:5])
        subject = serde.subject(topic, "value")
        first = (topic, schema_id) not in self._rejected_ids  # log the first of a burst, count them all
        self._rejected_ids.add((topic, schema_id))
        level = logging.WARNING if first else None
        self._event("schema.conflict.value", level, f"the broker rejected the record: {reason}",
                    topic=topic, subject=subject, schema_id=schema_id, error_class="schema.conflict")
        if not self.policy.follow or self.policy.max_resends < 1:
            self._event("produce.blocked", level, "observe only: not re-sent", topic=topic, subject=subject,
                        error_class="schema.conflict", schema_id=schema_id)
            return None
        verdict = None if memo is None else memo.get((topic, schema_id))
        if isinstance(verdict, Exception):
            self._event("produce.blocked", None, "", topic=topic, subject=subject, error_class="schema.conflict",
                        schema_id=schema_id)
            raise verdict
        try:
            return self._resend(topic, subject, schema_id, data, reason)
        except SchemaConflictError as exc:
            if memo is not None:
                memo[(topic, schema_id)] = exc
            raise

    def _resend(self, topic: str, subject: str, schema_id: int, data: bytes, reason: str) -> bytes:
        serde = self.serde
        self.check_open(topic, subject)
        with _subject_lock(serde.url, f"rejected:{subject}"):
            current = serde.cached_writer(topic, "value")
            if current is not None and schema_id_of(current[0]) != schema_id:
                entry = current  # another task's rejection was resolved already
            else:
                ours = self.written.get(schema_id) or serde.writer_schema(schema_id)
                cause = RuntimeError(f"the broker rejected schema id {schema_id}: {reason}")
                entry = self.follow_latest(topic, "value", subject, ours, cause)
                if schema_id_of(entry[0]) == schema_id:
                    self._blocked(topic, subject, "schema.conflict", "the registry's latest is the record's own "
                                  "schema", schema_id=schema_id)
                    raise SchemaConflictError(
                        f"[schema.conflict] the broker rejected a record for topic {topic!r} ({reason}) written "
                        f"with schema id {schema_id}, which is the latest of subject {subject!r}: following "
                        "cannot fix it", subject=subject, schema_id=schema_id, url=serde.url)
                serde.set_writer(topic, "value", entry)
        value = serde.decode_with(data, self.written.get(schema_id) or serde.writer_schema(schema_id))
        if current is not None and entry is current:
            self._event("produce.retry.on_error", None, "", topic=topic, subject=subject,
                        schema_id=schema_id_of(entry[0]))
        return serde.encode_with(value, entry)


def follow_latest_at_produce(serde: "AvroSerde", ctx: Any) -> None:
    """``resolve_schema_at_produce``: before a send, follow the subject's latest schema when it
    changed (the registry client's latest-version cache decides how often it asks)."""
    topic, field = ctx.topic, getattr(ctx.field, "value", ctx.field)
    resolver = serde.resolver
    subject = serde.subject(topic, field)
    resolver.check_open(topic, subject)
    resolved = resolver._subject_for_lookup(topic, field, subject)
    try:
        latest = serde.client.get_latest_version(resolved)
    except Exception as exc:
        error = registry_error(exc, f"getting the latest schema of subject {resolved!r}", serde.url,
                               subject=resolved)
        resolver._event("sr.lookup.fail", logging.WARNING, str(error), topic=topic, subject=subject,
                        resolved_subject=resolved, error_class=error.error_class)
        if serde.cached_writer(topic, field) is not None and resolver.policy.schema_check == "lenient":
            return  # lenient: keep the verified mapping this producer has
        raise error from exc
    current = serde.cached_writer(topic, field)
    if current is not None and schema_id_of(current[0]) == int(latest.schema_id):
        return
    if serde.parsed is None:
        entry = (serde.header(int(latest.schema_id)),
                 serde.parse_registered(latest.schema.schema_str, latest.schema.references))
    else:
        entry = resolver.judge(topic, field, subject, resolved, latest, serde.parsed, None)
    resolver.written[int(latest.schema_id)] = entry[1]
    serde.set_writer(topic, field, entry)
