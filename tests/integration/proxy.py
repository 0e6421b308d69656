"""A TCP proxy in front of a broker: cuts every client connection on demand (broker outages)."""

from __future__ import annotations

import selectors
import socket
import threading
import time


class TcpProxy:
    """Forwards a loopback port to ``target_port``, byte for byte, one thread per direction.

    :meth:`outage` closes every open connection and, for a while, closes new
    ones as soon as they are accepted: what a client sees of a broker that
    went down.
    """

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down_until = 0.0
        self.connections: set[tuple[socket.socket, socket.socket]] = set()
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._accept, name="broker-proxy", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        while not self.closed:
            if not sel.select(0.2):
                continue
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            if self.is_down():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = (client, upstream)
            with self.lock:
                self.connections.add(pair)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, pair), daemon=True).start()
        sel.close()

    def _pump(self, src: socket.socket, dst: socket.socket, pair: tuple[socket.socket, socket.socket]) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(pair)

    def _drop(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self.lock:
            self.connections.discard(pair)
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def is_down(self) -> bool:
        return time.monotonic() < self.down_until

    def outage(self, for_ms: int) -> None:
        self.down_until = time.monotonic() + for_ms / 1000.0
        with self.lock:
            open_now = list(self.connections)
        for pair in open_now:
            self._drop(pair)

    def close(self) -> None:
        self.closed = True
        self.thread.join(2)
        self.listener.close()
        with self.lock:
            open_now = list(self.connections)
        for pair in open_now:
            self._drop(pair)
