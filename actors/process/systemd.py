"""systemd notification over ``$NOTIFY_SOCKET`` with the standard library (no systemd package).

``notify("READY=1")``, ``notify("WATCHDOG=1")``, ``notify("STOPPING=1")``: a datagram to the socket
systemd names (a path, or ``@name`` for the abstract namespace). Without ``NOTIFY_SOCKET`` (not
under systemd) they do nothing. ``watchdog_interval()`` is half of ``$WATCHDOG_USEC`` in seconds
(systemd's advice), or ``None`` when the unit has no ``WatchdogSec=``; ``watchdog(interval)`` is the
task that pings ``WATCHDOG=1`` that often for as long as the process runs.
"""

from __future__ import annotations

import os
import socket

import trio


def notify(state: str, env=os.environ) -> bool:
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
    return True


def watchdog_interval(env=os.environ) -> float | None:
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


async def watchdog(interval: float) -> None:
    while True:
        notify("WATCHDOG=1")
        await trio.sleep(interval)
