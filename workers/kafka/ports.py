"""Free ports for the child processes we start (the embedded broker, workers, the ingress), which
bind them a moment after we choose them.

A port from bind(0) lies in the kernel's ephemeral range, the same range every outgoing connection
takes its local port from: between our choice and the child's bind, any client (a worker connecting to
the broker, a test polling /readyz) can take it, and the child dies with "address already in use"
(seen in CI: a worker of the two-worker test). Ports below that range are only ever taken by an
explicit bind, so we choose there, check that nothing is bound there, and never hand out one twice.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10000  # clear of the well-known and commonly configured service ports
_handed_out: set[int] = set()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default when unreadable)."""
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))  # the widest bind a child makes: conflicts with any other
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nothing is bound to, outside the ephemeral range, not returned before by this process."""
    low = ephemeral_range()[0]
    if low - _LOWEST >= 1000:
        for port in random.sample(range(_LOWEST, low), 200):
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    # No room below the range (or all 200 tries taken): the kernel's choice, with the race it carries.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _handed_out.add(port)
    return port
