"""Start-up problems are one line and exit status 2, never a traceback: every setting and every
path that ``sikka-supervisor run`` cannot use, each in a process of its own.

Regression: with ``DATABASE_URL`` and ``SIKKA_SECRETS_KEY`` set and a data dir that did not
exist, ``run`` failed with a ``FileNotFoundError`` traceback binding the socket; it now creates
the data dir (0700) and runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
import structlog
from cryptography.fernet import Fernet

from supervisor import main

from tests.cli.test_local import BIN


@pytest.fixture
def short_dir():
    path = Path(tempfile.mkdtemp(prefix="sk-start-", dir="/tmp"))  # socket paths are limited
    yield path
    shutil.rmtree(path, ignore_errors=True)


def base_env(database_url: str, short_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIKKA_", "DATABASE_URL", "SENTRY", "SLACK"))}
    env.update({
        "DATABASE_URL": database_url,
        "SIKKA_SECRETS_KEY": Fernet.generate_key().decode(),
        "SIKKA_APP_ID": "app", "SIKKA_APP_KEY": "app-key-1234",
        "SIKKA_API_URL": "http://127.0.0.1:9/v4",
        "SIKKA_DATA_DIR": str(short_dir / "data"),
        "SIKKA_ADMIN_SOCKET": str(short_dir / "admin.sock"),
        "SIKKA_NODE_ID": f"start-{uuid.uuid4().hex[:8]}",
        "SIKKA_LOG_FORMAT": "json",
    })
    return env


def listening_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def a_file(path: Path, content: bytes = b"x") -> Path:
    path.write_bytes(content)
    return path


def a_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


# (case, what the line names, the environment's changes given a private directory)
CASES = [
    ("data dir is a file", "SIKKA_DATA_DIR", lambda d: {"SIKKA_DATA_DIR": str(a_file(d / "f"))}),
    ("data dir below a file", "SIKKA_DATA_DIR", lambda d: {"SIKKA_DATA_DIR": str(a_file(d / "f") / "data")}),
    ("data dir cannot be made", "SIKKA_DATA_DIR", lambda d: {"SIKKA_DATA_DIR": "/proc/sikka-data"}),
    ("socket dir missing", "SIKKA_ADMIN_SOCKET", lambda d: {"SIKKA_ADMIN_SOCKET": str(d / "no" / "a.sock")}),
    ("socket path is a file", "is not a socket", lambda d: {"SIKKA_ADMIN_SOCKET": str(a_file(d / "a.sock"))}),
    ("socket path is a dir", "is not a socket", lambda d: {"SIKKA_ADMIN_SOCKET": str(a_dir(d / "a.sock"))}),
    ("admin group missing", "SIKKA_ADMIN_GROUP", lambda d: {"SIKKA_ADMIN_GROUP": "no-such-group-7q"}),
    ("listen address not local", "SIKKA_HTTP_LISTEN",
     lambda d: {"SIKKA_HTTP_LISTEN": "192.0.2.1:8780", "SIKKA_API_TOKEN": "t"}),
    ("listen port malformed", "SIKKA_HTTP_LISTEN", lambda d: {"SIKKA_HTTP_LISTEN": "127.0.0.1:http"}),
    ("token missing", "SIKKA_API_TOKEN", lambda d: {"SIKKA_HTTP_LISTEN": "127.0.0.1:8780"}),
    ("secrets key malformed", "SIKKA_SECRETS_KEY", lambda d: {"SIKKA_SECRETS_KEY": "nope"}),
    ("secrets key file missing", "SIKKA_SECRETS_KEY_FILE",
     lambda d: {"SIKKA_SECRETS_KEY": "", "SIKKA_SECRETS_KEY_FILE": str(d / "missing")}),
    ("key file is a directory", "secrets.key",
     lambda d: {"SIKKA_SECRETS_KEY": "", "SIKKA_DATA_DIR": str(a_dir(d / "data" / "secrets.key").parent)}),
    ("credential is a directory", "SIKKA_APP_KEY",
     lambda d: {"SIKKA_APP_KEY": "", "CREDENTIALS_DIRECTORY": str(a_dir(d / "creds" / "sikka_app_key").parent)}),
    ("credential not UTF-8", "SIKKA_APP_KEY_FILE",
     lambda d: {"SIKKA_APP_KEY": "", "SIKKA_APP_KEY_FILE": str(a_file(d / "k", b"\xff\xfe\x00"))}),
    ("lease ttl nan", "SIKKA_LEASE_TTL", lambda d: {"SIKKA_LEASE_TTL": "nan"}),
    ("deadline overflows", "SIKKA_DEADLINE", lambda d: {"SIKKA_DEADLINE": "1e300"}),
    ("no connections", "SIKKA_MAX_CONNECTIONS", lambda d: {"SIKKA_MAX_CONNECTIONS": "0"}),
    ("rate limit not whole", "SIKKA_RATE_LIMIT", lambda d: {"SIKKA_RATE_LIMIT": "1.5"}),
    ("node id with a space", "SIKKA_NODE_ID", lambda d: {"SIKKA_NODE_ID": "node 1"}),
    ("sentry dsn malformed", "SENTRY_DSN", lambda d: {"SENTRY_DSN": "not-a-dsn"}),
    ("slack url malformed", "SLACK_WEBHOOK_URL", lambda d: {"SLACK_WEBHOOK_URL": "hooks.slack.com/x"}),
    ("log format unknown", "SIKKA_LOG_FORMAT", lambda d: {"SIKKA_LOG_FORMAT": "xml"}),
    ("payload flag not a yes or no", "SIKKA_UI_SHOW_PAYLOADS", lambda d: {"SIKKA_UI_SHOW_PAYLOADS": "maybe"}),
    ("api url malformed", "SIKKA_API_URL", lambda d: {"SIKKA_API_URL": "ftp://x"}),
    ("database unreachable", "cannot connect", lambda d: {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}),
    ("socket path too long", "over 100 bytes", lambda d: {"SIKKA_ADMIN_SOCKET": "/tmp/" + "s" * 120}),
]


@pytest.fixture
def restored_logging():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


AFTER_THE_DATABASE = {"socket dir missing", "socket path is a file", "socket path is a dir", "listen address not local",
                      "key file is a directory", "secrets key malformed"}


@pytest.mark.parametrize(("case", "says", "changes"), CASES, ids=[c[0] for c in CASES])
def test_a_start_up_problem_is_one_line_and_exit_2(request, short_dir, monkeypatch, capsys, restored_logging,
                                                   case, says, changes):
    """``main(["run"])`` in this process, as the console script calls it: an exception that
    escaped it (a traceback) fails the test; the processes below check the same end to end."""
    reached = case in AFTER_THE_DATABASE
    env = base_env(request.getfixturevalue("database_url") if reached else "postgresql://127.0.0.1:1/x", short_dir)
    env.update(changes(short_dir))
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    status = main(["run"])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("sikka-supervisor: ") and says in lines[0], (
        case, status, err)
    if case == "socket path is a file":
        assert (short_dir / "a.sock").read_bytes() == b"x"  # never removed


def test_a_port_in_use_is_one_line_and_the_socket_file_is_not_left(database_url, short_dir):
    held, port = listening_port()
    env = base_env(database_url, short_dir)
    env.update({"SIKKA_HTTP_LISTEN": f"127.0.0.1:{port}", "SIKKA_API_TOKEN": "t"})
    with held:
        result = subprocess.run([str(BIN / "sikka-supervisor"), "run"], capture_output=True, text=True, env=env,
                                timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "SIKKA_HTTP_LISTEN" in result.stderr and "Address already in use" in result.stderr
    assert not (short_dir / "admin.sock").exists()


def test_a_missing_data_dir_is_created_private_and_the_supervisor_runs(database_url, short_dir):
    env = base_env(database_url, short_dir)
    env["SIKKA_DATA_DIR"] = str(short_dir / "not" / "yet")
    env["SIKKA_ADMIN_SOCKET"] = str(short_dir / "not" / "yet" / "admin.sock")  # in the data dir, as by default
    env["SIKKA_LOG_FORMAT"] = "console"  # overruled by --json: its log is JSON lines
    proc = subprocess.Popen([str(BIN / "sikka-supervisor"), "run", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        transport = httpx.HTTPTransport(uds=env["SIKKA_ADMIN_SOCKET"])
        deadline = time.monotonic() + 30
        with httpx.Client(transport=transport, base_url="http://localhost", timeout=2) as admin:
            while True:
                assert proc.poll() is None, proc.communicate()
                try:
                    if admin.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "no answer"
                    time.sleep(0.2)
        for created in (short_dir / "not", short_dir / "not" / "yet"):
            assert stat.S_IMODE(created.stat().st_mode) == 0o700
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        events = [json.loads(line)["event"] for line in out.splitlines()]
        assert "supervisor.ready" in events and events[-1] == "supervisor.stopped", out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
