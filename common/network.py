"""Fail fast offline: code that downloads (tfds, Keras weights) asks first whether it can.

A download over a closed network does not fail; it retries for minutes. One TCP connection with
a short timeout answers the question in seconds, and the caller turns the answer into one line.
"""

from __future__ import annotations

import socket

PROBE_TIMEOUT_S = 10.0


def unreachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``host:port`` accepts a connection, else why not."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return str(e) or type(e).__name__
    return None
