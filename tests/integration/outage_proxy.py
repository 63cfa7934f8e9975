"""A TCP forwarder between Kafka clients and the broker that can be cut: every open connection
closed and new ones refused for a while, which is what clients see of a broker restart.

The local broker keeps its data only in memory, so it cannot really be restarted mid-run
(bench/README.md); with the broker advertising the proxy's port, every client connection,
bootstrap and after, goes through here, and a cut is an outage with the data kept.
"""

from __future__ import annotations

import socket
import threading
import time


class OutageProxy:
    def __init__(self, port: int, target: str, host: str = "127.0.0.1"):
        self.host, self.port = host, port
        target_host, target_port = target.rsplit(":", 1)
        self.target = (target_host, int(target_port))
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.cuts = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "OutageProxy":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="outage-proxy-accept").start()
        return self

    def cut(self, seconds: float) -> None:
        """Close every connection, refuse new ones for ``seconds``, then accept again."""
        self._close_all()
        self.cuts += 1
        time.sleep(seconds)
        self.start()

    def stop(self) -> None:
        self._close_all()

    def __enter__(self) -> "OutageProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _close_all(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
        if listener is not None:
            listener.close()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed by a cut or stop
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True, name="outage-proxy-pump").start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)
