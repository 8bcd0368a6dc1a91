"""The session fixture that keeps tests off the network refuses non-loopback addresses and lets loopback through."""

import socket

import pytest


def test_a_public_address_is_refused_before_any_packet_leaves():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(ConnectionRefusedError, match="loopback"):
            sock.connect(("192.0.2.1", 80))          # TEST-NET-1: never routed
        with pytest.raises(ConnectionRefusedError, match="loopback"):
            sock.connect_ex(("198.51.100.7", 443))   # TEST-NET-2


def test_loopback_still_connects():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
