"""The worker's HTTP side: a small HTTP/1.1 server on anyio (h11 parses), in its own thread beside
the record loop (DESIGN §8).

It never touches the record loop: each request is answered by a plain function
``handle(method, path, query) -> (status, content type, body)`` run in a worker
thread of anyio, which reads what the loop publishes (task states, counters,
the stores' read-only views). The loop takes no lock and allocates nothing for
it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
import h11
from anyio.from_thread import start_blocking_portal

log = logging.getLogger("streamlet.http")

#: ``(status, content type, body)``
Response = tuple[int, str, bytes]
#: ``handle(method, path, query) -> Response``
Handler = Callable[[str, str, dict[str, str]], Response]

_MAX_REQUEST = 64 * 1024
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            500: b"Internal Server Error", 502: b"Bad Gateway", 503: b"Service Unavailable"}


class HttpSide:
    """``HttpSide(host, port, handle).start()``; :attr:`port` is the bound port (``0`` picks one)."""

    def __init__(self, host: str, port: int, handle: Handler) -> None:
        self.host, self.port, self.handle = host, port, handle
        self._portal_cm: Any = None
        self._portal: Any = None
        self._stopped = threading.Event()
        self._cancel: Any = None

    def start(self) -> "HttpSide":
        self._portal_cm = start_blocking_portal(name="streamlet-http")
        self._portal = self._portal_cm.__enter__()
        try:
            listener = self._portal.call(self._listen)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        self._portal.start_task(self._serve, listener)  # returns once its cancel scope exists
        log.info("HTTP side listening on %s:%d (/health, /ready, /metrics, /stores)", self.host, self.port)
        return self

    async def _listen(self) -> Any:
        return await anyio.create_tcp_listener(local_host=self.host, local_port=self.port, reuse_port=False)

    async def _serve(self, listener: Any, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.CancelScope() as scope:
            self._cancel = scope
            task_status.started()
            async with listener:
                await listener.serve(self._connection)

    def stop(self) -> None:
        if self._portal is None:
            return
        if self._cancel is not None:
            self._portal.call(self._cancel.cancel)
        self._portal_cm.__exit__(None, None, None)
        self._portal = None

    async def _connection(self, stream: Any) -> None:
        try:
            await self._exchange(stream)
        except Exception:  # one connection's failure must never stop the listener (and every probe)
            log.exception("HTTP connection failed")

    async def _exchange(self, stream: Any) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST)
        async with stream:
            while True:
                try:
                    request = await _next_request(conn, stream)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
                except h11.RemoteProtocolError:
                    await _send(conn, stream, (400, "text/plain", b"bad HTTP request\n"), close=True)
                    return
                if request is None:
                    return
                method, target = request.method.decode(), request.target.decode("latin-1")
                parts = urlsplit(target)
                query = dict(parse_qsl(parts.query))
                try:
                    response = await anyio.to_thread.run_sync(self.handle, method, unquote(parts.path), query)
                except Exception as exc:  # a bug in a route: answer 500, keep serving
                    log.exception("HTTP %s %s failed", method, target)
                    response = (500, "text/plain", f"{type(exc).__name__}: {exc}\n".encode())
                try:
                    await _send(conn, stream, response, close=False, head=method == "HEAD")
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return


async def _next_request(conn: h11.Connection, stream: Any) -> Any:
    """The next request (its body read and dropped), or ``None`` when the client closed."""
    request = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive(65536)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _send(conn: h11.Connection, stream: Any, response: Response, close: bool,
                head: bool = False) -> None:
    """Write ``response``; for ``head`` (a HEAD request) its headers only, as HTTP wants."""
    status, ctype, body = response
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    out = conn.send(h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b"")))
    if not head:
        out += conn.send(h11.Data(data=body))
    out += conn.send(h11.EndOfMessage())
    await stream.send(out)
