"""Processes on this machine's loopback: a free port, a Kafka broker that answers, children that
die with the process that started them. Shared by the local brokers (streams/tansu/,
streams/apache_kafka/), the local pipeline and the tests."""

from __future__ import annotations

import signal
import socket
import struct


def die_with_parent() -> None:
    """``preexec_fn`` for local children (broker, workers): the kernel sends them SIGTERM when
    the process that started them dies, even by SIGKILL or a test timeout, so a killed
    ``subsidy up`` or pytest never leaves a broker or a worker behind. Linux only; elsewhere
    the explicit stop in ``finally`` blocks is all there is."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def answers_kafka(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if host:port answers an ApiVersions v0 request."""
    client_id = b"local-broker-probe"
    correlation_id = 7
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            header = b""
            while len(header) < 8:
                chunk = s.recv(8 - len(header))
                if not chunk:
                    return False
                header += chunk
            _size, got_id = struct.unpack(">ii", header)
            return got_id == correlation_id
    except OSError:
        return False
