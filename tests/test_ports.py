"""Ports for the child processes we start (workers.kafka.ports): outside the range outgoing connections
take their local ports from, so no client can take one between our choice and the child's bind."""

from __future__ import annotations

import socket

from workers.kafka import ports


def test_ports_lie_below_the_ephemeral_range_are_free_and_never_handed_out_twice():
    low, high = ports.ephemeral_range()
    assert 1024 <= low <= high
    chosen = [ports.free_port() for _ in range(100)]
    assert len(set(chosen)) == 100
    assert all(ports._LOWEST <= port < low for port in chosen), [p for p in chosen if p >= low]
    for port in chosen[:10]:  # what a child does with it next: bind it, on every address
        with socket.socket() as sock:
            sock.bind(("0.0.0.0", port))
            sock.listen()


def test_a_listening_port_is_never_chosen(monkeypatch):
    # Candidates in order instead of at random, and the first fifty taken by listeners: the choice
    # must skip every one of them.
    monkeypatch.setattr(ports, "_LOWEST", 20000)
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (21000, 60999))
    monkeypatch.setattr(ports.random, "sample", lambda population, k: list(population)[:k])
    listeners = []
    try:
        for port in range(20000, 20050):
            sock = socket.socket()
            listeners.append(sock)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
            except OSError:
                pass  # taken by someone else already: just as good
        chosen = ports.free_port()
    finally:
        for sock in listeners:
            sock.close()
    assert 20050 <= chosen < 21000


def test_with_no_room_below_the_range_the_kernel_chooses(monkeypatch):
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (1024, 65000))
    chosen = {ports.free_port() for _ in range(5)}
    assert len(chosen) == 5 and all(1024 <= port <= 65535 for port in chosen)
