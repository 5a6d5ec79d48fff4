"""Connection exhaustion, as the attack was run: ``sikka-supervisor run`` as a process at
``nofile=1024`` (systemd's default soft limit), 1,100 half-sent unauthenticated TCP connections.
The TCP listener holds its cap and closes the rest at once, the process stays under its limit
(no "Too many open files"), the admin socket answers throughout, and the held connections are
dropped once their request is overdue. Also: the process raises its soft limit to the hard one.
"""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

import httpx
import pytest

from bench.processes import Sim, Supervisor
from tests.support.processes import free_port

pytestmark = pytest.mark.slow

FLOOD = 1100
TOKEN = "tok-flood-3e9a"


def open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def soft_limit(pid: int) -> tuple[str, str]:
    line = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines() if "open files" in line)
    soft, hard = line.split()[3:5]
    return soft, hard


def closed(s: socket.socket) -> bool:
    try:
        return s.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False  # open, nothing to read
    except ConnectionResetError:
        return True


def test_a_tcp_flood_at_nofile_1024_never_starves_the_socket(tmp_path, database_url):
    port = free_port()
    sim = Sim(tmp_path, 1)
    supervisor = Supervisor(tmp_path, sim, database_url)
    supervisor.env.update({"SIKKA_HTTP_LISTEN": f"127.0.0.1:{port}", "SIKKA_API_TOKEN": TOKEN})
    own = resource.getrlimit(resource.RLIMIT_NOFILE)
    flood: list[socket.socket] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, own[1]))  # inherited by the supervisor
        try:
            supervisor.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (own[1], own[1]))  # room for our end of the flood
        pid = supervisor.proc.pid
        soft, hard = soft_limit(pid)
        assert soft == hard, (soft, hard)  # raised at start

        resource.prlimit(pid, resource.RLIMIT_NOFILE, (1024, 1024))  # the limit the attack ran against
        for _ in range(FLOOD):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /practices/D1000/writebacks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            flood.append(s)
        time.sleep(1.0)
        with supervisor.client(timeout=1) as admin:
            assert admin.get("/health").status_code == 200  # the socket answers at once
        assert open_files(pid) < 256 + 200, open_files(pid)  # the cap and the pools, far from 1024
        shed = sum(closed(s) for s in flood)
        assert shed >= FLOOD - 256, shed  # beyond the cap: closed at once

        time.sleep(10.5)  # the held ones: their request is overdue
        assert all(closed(s) for s in flood)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as tcp:
            assert tcp.get("/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        with supervisor.client(timeout=1) as admin:
            assert admin.get("/health").status_code == 200
        assert supervisor.terminate() == 0
    finally:
        for s in flood:
            s.close()
        if supervisor.proc and supervisor.proc.poll() is None:
            supervisor.kill9()
        sim.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, own)
    log = (tmp_path / "supervisor-1.log").read_text()
    assert "Too many open files" not in log and "EMFILE" not in log
    assert log.count("http.connections_shed") == 1  # warned once a minute, not once a connection
