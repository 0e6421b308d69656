"""The worker's HTTP side on its own: the anyio + h11 server (keep-alive, bad requests, a failing
route) and the routes over fake worker parts (health, readiness, metrics, stores, key parsing)."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx2 as httpx
import orjson
import pytest

import streamlet as sl
from streamlet.metrics import Metrics
from streamlet.record import Windowed
from streamlet.runtime.http_routes import Routes, parse_key
from streamlet.runtime.http_side import HttpSide
from streamlet.runtime.prometheus import counter_samples, render


@pytest.fixture
def server() -> Any:
    calls: list[tuple[str, str, dict[str, str]]] = []

    def handle(method: str, path: str, query: dict[str, str]) -> Any:
        calls.append((method, path, query))
        if path == "/boom":
            raise RuntimeError("a bug in a route")
        return 200, "text/plain", f"{method} {path} {sorted(query.items())}".encode()

    side = HttpSide("127.0.0.1", 0, handle).start()
    side.calls = calls  # type: ignore[attr-defined]
    yield side
    side.stop()


def test_requests_on_one_kept_alive_connection_and_a_failing_route(server: Any) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert client.get("/a%2Fb", params={"x": "1"}).text == "GET /a/b [('x', '1')]"
        assert client.get("/boom").status_code == 500
        assert client.get("/after").text == "GET /after []"  # the server goes on after a failing route
    assert [c[1] for c in server.calls] == ["/a/b", "/boom", "/after"]


def test_garbage_gets_a_400_and_the_server_goes_on(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert s.recv(1000).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n")
        s.close()  # half a request, then gone
    assert httpx.get(f"http://127.0.0.1:{server.port}/ok").status_code == 200


def test_head_gets_the_headers_only_and_the_server_goes_on(server: Any) -> None:
    """A HEAD (uptime checkers, load balancers) once made h11 refuse the body and took the listener
    down with it: every later probe was refused."""
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        head = client.head("/health")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len("HEAD /health []")
        assert client.get("/health").text == "GET /health []"  # the same kept-alive connection
    assert httpx.get(f"http://127.0.0.1:{server.port}/after").text == "GET /after []"


def test_stop_frees_the_port() -> None:
    side = HttpSide("127.0.0.1", 0, lambda m, p, q: (200, "text/plain", b"")).start()
    port = side.port
    side.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# -- the routes --------------------------------------------------------------------------------------
class Spec:
    def __init__(self, kind: str = "aggregate", key_serde: Any = None) -> None:
        self.kind, self.key_serde = kind, key_serde or sl.serde.string()


class WindowView(dict):
    def fetch(self, key: Any, *a: Any) -> list[Any]:
        return [(w, v) for w, v in self.items() if w.key == key]


def routes(state: dict[str, Any] | None = None, last_poll: float | None = None, owner: Any = None) -> Routes:
    views = {"counts": {"a": 1, "b": 2, "c": 3}, "ids": {7: "seven", 8: "eight"},
             "per-minute": WindowView({Windowed("a", 0, 60_000): 4, Windowed("a", 60_000, 120_000): 5})}
    specs = {"counts": Spec(), "ids": Spec(key_serde=sl.serde.long()), "per-minute": Spec("window")}
    return Routes(lambda: state or {"state": "running", "ready": True, "tasks": {"0_0": "RUNNING"}},
                  views.__getitem__, specs, lambda: "streamlet_up 1\n", lambda: last_poll, owner=owner,
                  liveness_timeout_s=10)


def call(r: Routes, path: str, **query: str) -> tuple[int, Any]:
    status, ctype, body = r("GET", path, query)
    return status, orjson.loads(body) if ctype == "application/json" else body.decode()


def test_health_follows_the_poll_loop() -> None:
    assert call(routes(last_poll=None), "/health") == (200, {"status": "STARTING"})
    status, body = call(routes(last_poll=time.monotonic() - 1), "/health")
    assert status == 200 and body["status"] == "UP"
    status, body = call(routes(last_poll=time.monotonic() - 11), "/health")
    assert status == 503 and body["status"] == "DOWN" and body["last_poll_age_s"] >= 11


def test_ready_is_503_while_a_task_restores() -> None:
    restoring = {"state": "restoring", "ready": False, "tasks": {"0_0": "RESTORING", "0_1": "RUNNING"}}
    assert call(routes(restoring), "/ready") == (503, restoring)
    assert call(routes(), "/ready")[0] == 200


def test_stores_keys_and_scans() -> None:
    r = routes()
    assert call(r, "/stores") == (200, {"counts": "key-value", "ids": "key-value", "per-minute": "window"})
    assert call(r, "/stores/counts/b") == (200, {"key": "b", "value": 2})
    assert call(r, "/stores/ids/7") == (200, {"key": 7, "value": "seven"})
    assert call(r, "/stores/per-minute/a")[1]["windows"] == [
        {"window": {"key": "a", "start": 0, "end": 60_000}, "value": 4},
        {"window": {"key": "a", "start": 60_000, "end": 120_000}, "value": 5}]
    status, body = call(r, "/stores/counts", **{"from": "b", "to": "c"})
    assert status == 200 and [row["key"] for row in body["rows"]] == ["b", "c"] and not body["truncated"]
    assert call(r, "/stores/counts", limit="2")[1]["truncated"] is True
    assert call(r, "/metrics") == (200, "streamlet_up 1\n")


@pytest.mark.parametrize("path,query,status,message", [
    ("/stores/nope/a", {}, 404, "no store named 'nope'"),
    ("/stores/counts/zz", {}, 404, "key 'zz' is not in store 'counts'"),
    ("/stores/ids/seven", {}, 400, "integers"),
    ("/stores/counts/a/b", {}, 404, "encode '/'"),
    ("/stores/counts/a", {"key_format": "yaml"}, 400, "key_format"),
    ("/stores/counts/{", {"key_format": "json"}, 400, "not JSON"),
    ("/stores/counts", {"limit": "x"}, 400, "invalid literal"),
    ("/stores/counts", {"limit": "0"}, 400, "limit must be"),
    ("/stores/ids", {"from": "a"}, 400, "integers"),
    ("/nowhere", {}, 404, "no route"),
])
def test_bad_requests_get_a_clear_4xx(path: str, query: dict[str, str], status: int, message: str) -> None:
    got, body = call(routes(), path, **query)
    assert got == status and message in body["error"], body


def test_only_get_is_served() -> None:
    status, _, body = routes()("POST", "/stores/counts/a", {})
    assert status == 405 and b"read-only" in body


def test_a_key_another_worker_owns_is_asked_of_it() -> None:
    asked = []

    def owner(store: str, key: Any) -> Any:
        if key != "remote":
            return None
        return lambda: asked.append((store, key)) or (200, "application/json", b'{"key":"remote","value":9}\n')

    r = routes(owner=owner)
    assert call(r, "/stores/counts/remote") == (200, {"key": "remote", "value": 9})
    assert call(r, "/stores/counts/a") == (200, {"key": "a", "value": 1}) and asked == [("counts", "remote")]


def test_parse_key_by_serde() -> None:
    assert parse_key(sl.serde.json(), '{"u": 1}') == {"u": 1}
    assert parse_key(sl.serde.json(), "alice") == "alice"
    assert parse_key(sl.serde.integer(), "-3") == -3
    assert parse_key(sl.serde.bytes(), "raw") == b"raw"
    assert parse_key(sl.serde.string(), "42", "json") == 42


def test_prometheus_text() -> None:
    metrics = Metrics()
    metrics.inc("sr.lookup.ok", subject="orders-value", topic="out")
    metrics.inc("rebalances", event="assigned")
    text = render([("streamlet_ready", [], 1), ("streamlet_consumer_lag", [("topic", 'a"b'), ("partition", 0)], 12),
                   *counter_samples(metrics)])
    assert "# TYPE streamlet_ready gauge\nstreamlet_ready 1\n" in text
    assert 'streamlet_consumer_lag{topic="a\\"b",partition="0"} 12' in text
    assert 'streamlet_sr_lookup_ok_total{subject="orders-value",topic="out"} 1' in text
    assert "# TYPE streamlet_rebalances_total counter" in text
