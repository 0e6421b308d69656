"""What the worker's HTTP side answers (served by :mod:`streamlet.runtime.http_side`):

    GET /health                 200 while the poll loop makes progress, else 503 (liveness)
    GET /ready                  200 when every assigned task is running, else 503 (readiness)
    GET /metrics                the worker's metrics in the Prometheus text format
    GET /stores                 the stores and their kinds
    GET /stores/{name}/{key}    one key's value (a window store: the key's windows), from this
                                worker or, when another one owns the key, from that worker
    GET /stores/{name}?from=A&to=B&limit=N
                                the keys this worker holds, in key order, from A to B (inclusive)

A key in a path is text: a string key as it is, a number key as digits, a JSON key as JSON
(``?key_format=json`` forces it). A bad request gets a 4xx with a JSON ``{"error": ...}`` that
says what to send instead; never a crash.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import orjson

from streamlet.record import Windowed

Response = tuple[int, str, bytes]

_JSON = "application/json"
_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_INTEGER_SERDES = ("long", "integer", "int32")


def _json(status: int, body: Any) -> Response:
    return status, _JSON, orjson.dumps(body, default=plain_json, option=orjson.OPT_NON_STR_KEYS) + b"\n"


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def plain_json(value: Any) -> Any:
    """JSON for what orjson does not know: windows, decimals, bytes, sets, dataclasses' dicts."""
    if isinstance(value, Windowed):
        return {"key": value.key, "start": value.start, "end": value.end}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def parse_key(serde: Any, text: str, key_format: Optional[str] = None) -> Any:
    """The key a store's key serde takes, from the text of a URL; ``ValueError`` saying what to send."""
    name = str(getattr(serde, "name", ""))
    if key_format not in (None, "", "json", "string"):
        raise ValueError(f"key_format must be 'json' or 'string', not {key_format!r}")
    if key_format == "json":
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"key {text!r} is not JSON (key_format=json): {exc}") from None
    if key_format == "string" or name in ("string", "bytes"):
        return text.encode() if name == "bytes" else text
    if name in _INTEGER_SERDES or getattr(serde, "schema_json", None) in ("long", "int"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"the store's keys are integers ({name}): {text!r} is not one") from None
    if name in ("json", "msgpack"):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text  # a string key needs no quotes
    return text


class Routes:
    """``routes(method, path, query) -> (status, content type, body)`` for one worker.

    ``state()``: the app's state dict (``app.state()``); ``store(name)``: a store's
    read-only view; ``specs``: store name -> StoreSpec; ``metrics_text()``: the
    Prometheus page; ``last_poll()``: the monotonic time the loop last polled (``None``
    before the loop runs); ``owner(name, key)``: ``None`` when this worker holds the
    key's partition (or nobody is known to), else a callable that asks the owner.
    """

    def __init__(self, state: Callable[[], dict[str, Any]], store: Callable[[str], Any], specs: dict[str, Any],
                 metrics_text: Callable[[], str], last_poll: Callable[[], Optional[float]],
                 owner: Callable[[str, Any], Any] | None = None, liveness_timeout_s: float = 60.0) -> None:
        self.state, self.store, self.specs = state, store, specs
        self.metrics_text, self.last_poll, self.owner = metrics_text, last_poll, owner
        self.liveness_timeout_s = liveness_timeout_s

    def __call__(self, method: str, path: str, query: dict[str, str]) -> Response:
        if method not in ("GET", "HEAD"):
            return _error(405, f"{method} is not served: the HTTP side is read-only (GET)")
        parts = [p for p in path.split("/") if p]
        if parts == ["health"]:
            return self.health()
        if parts == ["ready"]:
            state = self.state()
            return _json(200 if state["ready"] else 503, state)
        if parts == ["metrics"]:
            return 200, _PROMETHEUS, self.metrics_text().encode()
        if parts and parts[0] == "stores":
            return self.stores(parts[1:], query)
        return _error(404, f"no route {path!r}: GET /health, /ready, /metrics, /stores, /stores/NAME/KEY")

    def health(self) -> Response:
        last = self.last_poll()
        if last is None:
            return _json(200, {"status": "STARTING"})
        age = time.monotonic() - last
        up = age < self.liveness_timeout_s
        return _json(200 if up else 503, {"status": "UP" if up else "DOWN", "last_poll_age_s": round(age, 3)})

    def stores(self, parts: list[str], query: dict[str, str]) -> Response:
        if not parts:
            return _json(200, {name: _kind(spec) for name, spec in sorted(self.specs.items())})
        name = parts[0]
        spec = self.specs.get(name)
        if spec is None:
            return _error(404, f"no store named {name!r}; stores: {sorted(self.specs)}")
        try:
            view = self.store(name)
        except Exception as exc:  # not running yet
            return _error(503, f"store {name!r} cannot be read yet: {exc}")
        if len(parts) == 1:
            return self.scan(name, spec, view, query)
        if len(parts) > 2:
            return _error(404, f"/stores/{name}/KEY takes one key: encode '/' in it as %2F")
        try:
            key = parse_key(spec.key_serde, parts[1], query.get("key_format"))
        except ValueError as exc:
            return _error(400, str(exc))
        return self.get(name, spec, view, key, query)

    def get(self, name: str, spec: Any, view: Any, key: Any, query: dict[str, str]) -> Response:
        # this worker's stores first (a key partitioned other than by murmur2 may still be here); then
        # the worker that runs the key's task, unless the request came from another worker (local=true)
        ask_owner = self.owner(name, key) if self.owner is not None and query.get("local") != "true" else None
        try:
            if _kind(spec) != "key-value":
                found = view.fetch(key)
                if not found:
                    raise KeyError(key)
                return _json(200, {"key": key, "windows": [{"window": w, "value": v} for w, v in found]})
            return _json(200, {"key": key, "value": view[key]})
        except KeyError:
            if ask_owner is not None:
                return ask_owner()
            return _error(404, f"key {key!r} is not in store {name!r}")
        except Exception as exc:
            return _error(400, f"key {key!r} cannot be looked up in store {name!r}: {type(exc).__name__}: {exc}")

    def scan(self, name: str, spec: Any, view: Any, query: dict[str, str]) -> Response:
        try:
            limit = int(query.get("limit", "1000"))
            low = parse_key(spec.key_serde, query["from"], query.get("key_format")) if "from" in query else None
            high = parse_key(spec.key_serde, query["to"], query.get("key_format")) if "to" in query else None
        except ValueError as exc:
            return _error(400, str(exc))
        if limit < 1:
            return _error(400, "limit must be >= 1")
        rows = []
        try:
            for key, value in view.items():
                k = key.key if isinstance(key, Windowed) else key
                if (low is not None and k < low) or (high is not None and k > high):
                    continue
                rows.append((key, value))
            rows.sort(key=lambda kv: _sort_key(kv[0]))
        except TypeError as exc:
            return _error(400, f"keys of store {name!r} cannot be compared with the bounds given: {exc}")
        return _json(200, {"store": name, "scope": "local", "rows": [{"key": k, "value": v} for k, v in rows[:limit]],
                           "truncated": len(rows) > limit})


def _kind(spec: Any) -> str:
    """``key-value``, or a windowed kind (``window``, ``session``, ``sliding``): its keys' windows."""
    return spec.kind if spec.kind in ("window", "session", "sliding") else "key-value"


def _sort_key(key: Any) -> Any:
    if isinstance(key, Windowed):
        return (key.key, key.start)
    return key
