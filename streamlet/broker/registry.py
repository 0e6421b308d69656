"""An embedded Schema Registry over HTTP on loopback (``streamlet broker --schema-registry``).

confluent-kafka's ``mock://`` registry lives inside one client object, so
processes cannot share it; this one serves the subset of Confluent's REST API
that confluent-kafka's ``SchemaRegistryClient`` uses for Avro, for
multi-process embedded runs, the demo and tests. Production points at a real
registry. Kept in memory; Avro only; schema references (``references`` in
and out, checked on register, compatibility with the referenced types); no
contexts or modes beyond ``READWRITE``.

    GET  /subjects                          GET  /schemas/ids/{id}[/subjects|/versions]
    GET  /subjects/{s}/versions             GET  /schemas/types
    GET  /subjects/{s}/versions/{v}[/schema|/referencedby]
    POST /subjects/{s}/versions  (register) POST /subjects/{s}  (look up)
    DELETE /subjects/{s}[/versions/{v}]     POST /compatibility/subjects/{s}/versions[/{v}]
    GET|PUT|DELETE /config[/{s}]            GET  /mode[/{s}]

Errors are JSON ``{"error_code": ..., "message": ...}`` with Confluent's codes:
40401 subject, 40402 version, 40403 schema not found, 409 incompatible,
42201 invalid schema, 42202 invalid version, 42203 invalid level, 40408 no
subject-level compatibility, 42206 a deleted version still referenced. :attr:`RegistryServer.requests`
counts requests.
"""

from __future__ import annotations

import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from streamlet.broker.registry_refs import reference_list
from streamlet.broker.registry_store import RegistryFault, SchemaStore

log = logging.getLogger("streamlet.broker.registry")

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

Route = Callable[["RegistryServer", dict[str, Any], dict[str, str], Any], Any]
_ROUTES: list[tuple[str, re.Pattern[str], Route]] = []


def _route(method: str, pattern: str) -> Callable[[Route], Route]:
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$")

    def add(fn: Route) -> Route:
        _ROUTES.append((method, regex, fn))
        return fn

    return add


def _flag(query: dict[str, str], name: str, default: bool = False) -> bool:
    return query.get(name, str(default)).lower() == "true"


def _schema_body(body: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """``(schema text, schema type, references)`` of a request body."""
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise RegistryFault(422, 42201, "Invalid schema: the body needs a 'schema' string")
    try:
        references = reference_list(body.get("references"))
    except ValueError as exc:
        raise RegistryFault(422, 42201, f"Invalid schema: {exc}") from None
    return body["schema"], str(body.get("schemaType") or "AVRO"), references


def _with_references(store: SchemaStore, sid: int, answer: dict[str, Any]) -> dict[str, Any]:
    references = store.references(sid)
    return {**answer, "references": references} if references else answer


def _registered(store: SchemaStore, subject: str, version: int, sid: int) -> dict[str, Any]:
    return _with_references(store, sid, {"subject": subject, "version": version, "id": sid,
                                         "schema": store.schema(sid)})


# -- subjects ---------------------------------------------------------------------------------------
@_route("GET", "/subjects")
def _subjects(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    prefix = q.get("subjectPrefix", "")
    return [s for s in srv.store.all_subjects() if s.startswith(prefix)]


@_route("GET", "/subjects/{subject}/versions")
def _versions(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return [v for v, _ in srv.store.versions(p["subject"])]


@_route("GET", "/subjects/{subject}/versions/{version}")
def _version(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    version, sid = srv.store.version(p["subject"], p["version"])
    return _registered(srv.store, p["subject"], version, sid)


@_route("GET", "/subjects/{subject}/versions/{version}/schema")
def _version_schema(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return orjson.loads(srv.store.schema(srv.store.version(p["subject"], p["version"])[1]))


@_route("GET", "/subjects/{subject}/versions/{version}/referencedby")
def _referenced_by(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return srv.store.referenced_by(p["subject"], p["version"])


@_route("POST", "/subjects/{subject}/versions")
def _register(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    text, kind, references = _schema_body(body)
    version, sid = srv.store.register(p["subject"], text, kind, references)
    log.info("registered schema id %d as version %d of subject %s", sid, version, p["subject"])
    return {"id": sid, "version": version, "subject": p["subject"]}


@_route("POST", "/subjects/{subject}")
def _lookup(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    text, _, references = _schema_body(body)
    version, sid = srv.store.lookup(p["subject"], text, references)
    return _registered(srv.store, p["subject"], version, sid)


@_route("DELETE", "/subjects/{subject}")
def _delete_subject(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return srv.store.delete_subject(p["subject"])


@_route("DELETE", "/subjects/{subject}/versions/{version}")
def _delete_version(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return srv.store.delete_version(p["subject"], p["version"])


# -- schemas by id ----------------------------------------------------------------------------------
def _schema_id(p: dict[str, Any]) -> int:
    if not p["id"].isdigit():
        raise RegistryFault(404, 40403, f"Schema {p['id']} not found")
    return int(p["id"])


@_route("GET", "/schemas/ids/{id}")
def _by_id(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    sid = _schema_id(p)
    return _with_references(srv.store, sid, {"schema": srv.store.schema(sid)})


@_route("GET", "/schemas/ids/{id}/subjects")
def _id_subjects(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return sorted({s for s, _ in srv.store.subjects_of(_schema_id(p))})


@_route("GET", "/schemas/ids/{id}/versions")
def _id_versions(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return [{"subject": s, "version": v} for s, v in srv.store.subjects_of(_schema_id(p))]


@_route("GET", "/schemas/types")
def _types(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return ["AVRO"]


# -- compatibility ----------------------------------------------------------------------------------
@_route("POST", "/compatibility/subjects/{subject}/versions/{version}")
def _compatible(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    text, _, references = _schema_body(body)
    problems = srv.store.check(p["subject"], text, p["version"], references)
    return {"is_compatible": not problems, **({"messages": problems} if _flag(q, "verbose") else {})}


@_route("POST", "/compatibility/subjects/{subject}/versions")
def _compatible_all(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    text, _, references = _schema_body(body)
    problems = srv.store.check(p["subject"], text, None, references)
    return {"is_compatible": not problems, **({"messages": problems} if _flag(q, "verbose") else {})}


@_route("GET", "/config")
def _global_level(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return {"compatibilityLevel": srv.store.level(None)}


@_route("GET", "/config/{subject}")
def _subject_level(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return {"compatibilityLevel": srv.store.level(p["subject"], _flag(q, "defaultToGlobal"))}


@_route("PUT", "/config")
def _set_global(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return {"compatibility": srv.store.set_level(None, (body or {}).get("compatibility"))}


@_route("PUT", "/config/{subject}")
def _set_subject(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return {"compatibility": srv.store.set_level(p["subject"], (body or {}).get("compatibility"))}


@_route("DELETE", "/config")
def _delete_global(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return {"compatibilityLevel": srv.store.delete_level(None)}


@_route("DELETE", "/config/{subject}")
def _delete_subject_level(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return {"compatibilityLevel": srv.store.delete_level(p["subject"])}


@_route("GET", "/mode")
def _mode(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return {"mode": "READWRITE"}


@_route("GET", "/mode/{subject}")
def _subject_mode(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return {"mode": "READWRITE"}


@_route("GET", "/")
def _root(srv: "RegistryServer", p: dict[str, Any], q: dict[str, str], body: Any) -> Any:
    return {}


# -- the server -------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: "_HTTPServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s " + format, self.client_address[0], *args)

    def _answer(self, status: int, payload: Any) -> None:
        data = orjson.dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        owner = self.server.owner
        owner.count(method, self.path)
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            self._answer(400, {"error_code": 400, "message": "the body is not JSON"})
            return
        path = url.path.rstrip("/") or "/"
        allowed = False
        for m, regex, fn in _ROUTES:
            match = regex.match(path)
            if match is None:
                continue
            allowed = True
            if m != method:
                continue
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            try:
                self._answer(200, fn(owner, params, query, body))
            except RegistryFault as fault:
                self._answer(fault.status, {"error_code": fault.code, "message": fault.message})
            except Exception as exc:  # a bug here must answer, not hang the client
                log.exception("embedded schema registry: %s %s failed", method, self.path)
                self._answer(500, {"error_code": 50001, "message": f"{type(exc).__name__}: {exc}"})
            return
        if allowed:
            self._answer(405, {"error_code": 405, "message": f"HTTP {method} not allowed on {path}"})
        else:
            self._answer(404, {"error_code": 404, "message": f"HTTP 404 Not Found: {path}"})

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: "RegistryServer"


class RegistryServer:
    """The embedded registry on ``host:port`` (0: any free port), served from a thread.

        >>> with RegistryServer() as registry:
        ...     registry.url.startswith("http://127.0.0.1:")
        True
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, store: SchemaStore | None = None) -> None:
        self.store = store or SchemaStore()
        self._http = _HTTPServer((host, port), _Handler)
        self._http.owner = self
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="streamlet-schema-registry", daemon=True)
        self._lock = threading.Lock()
        #: requests served, and the last ones as ``(method, path)`` (tests count them)
        self.requests = 0
        self.recent: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def count(self, method: str, path: str) -> None:
        with self._lock:
            self.requests += 1
            self.recent = (self.recent + [(method, path)])[-100:]

    def start(self) -> "RegistryServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._http.shutdown()
            self._thread.join(5)
        self._http.server_close()

    def __enter__(self) -> "RegistryServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
