"""sd_notify over $NOTIFY_SOCKET (path and abstract namespace) and the watchdog interval."""

from __future__ import annotations

import os
import socket

from actors.process import systemd


def receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2)
    return sock


def test_notify_sends_datagrams_to_the_named_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    with receiver(path) as sock:
        assert systemd.notify("READY=1", {"NOTIFY_SOCKET": path})
        assert systemd.notify("STOPPING=1", {"NOTIFY_SOCKET": path})
        assert sock.recv(64) == b"READY=1" and sock.recv(64) == b"STOPPING=1"


def test_notify_abstract_namespace():
    name = f"sikka-test-{os.getpid()}"
    with receiver("\0" + name) as sock:
        assert systemd.notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(64) == b"WATCHDOG=1"


def test_without_systemd_nothing_happens():
    assert systemd.notify("READY=1", {}) is False


def test_watchdog_interval_is_half_the_timeout_for_this_process():
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert systemd.watchdog_interval({}) is None
