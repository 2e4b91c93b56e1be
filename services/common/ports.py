"""A free loopback port for a service started by a local tool (tests, `make check-images`).

The kernel may offer a just-closed port again, so two services asked for in a row could be told
the same one; this hands each port out once per process.
"""
from __future__ import annotations

import socket

_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free now and not handed out before by this process."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
