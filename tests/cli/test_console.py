"""``sikka-supervisor console``: a real process in front of a supervisor's admin socket. It prints
a one-time login URL; the link logs in once (a session cookie of that process), every console
request then goes to the socket (actions audited as the command's uid), the JSON API is not
served, and without a supervisor the command exits 3."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import structlog
import trio

from actors.api.console.session import COOKIE

BIN = Path(sys.executable).parent / "sikka-supervisor"


async def test_the_one_time_url_logs_in_once_and_the_console_is_the_supervisors(sup):
    command = await trio.lowlevel.open_process(
        [str(BIN), "--admin-socket", str(sup.socket), "console", "--port", "0"], stdout=subprocess.PIPE,
    )
    try:
        with trio.fail_after(20):
            line = b""
            while not line.endswith(b"\n"):
                line += await command.stdout.receive_some(1)
        url = line.decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/ui/login\?token=[A-Za-z0-9_-]{43}", url), url
        base = url.split("/ui/")[0]
        async with httpx.AsyncClient(base_url=base, timeout=30) as browser:
            assert (await browser.get("/ui/")).headers["location"] == "/ui/login?next=/ui/"
            wrong = await browser.get("/ui/login", params={"token": "x" * 43})
            assert wrong.status_code == 403 and "set-cookie" not in wrong.headers
            opened = await browser.get(url)
            assert opened.status_code == 303 and opened.headers["location"] == "/ui/"
            cookie = {"cookie": opened.headers["set-cookie"].split(";")[0]}
            assert cookie["cookie"].startswith(f"{COOKIE}=")
            assert "HttpOnly" in opened.headers["set-cookie"] and "SameSite=Strict" in opened.headers["set-cookie"]
            browser.cookies.clear()
            again = await browser.get(url)
            assert again.status_code == 403 and "used already" in again.text  # one time only

            overview = await browser.get("/ui/", headers=cookie)
            assert overview.status_code == 200 and "D1000" in overview.text and "D1001" in overview.text
            assert overview.headers["content-security-policy"].startswith("default-src 'none'")
            assert (await browser.get("/practices", headers=cookie)).status_code == 404  # only the console
            confirm = await browser.get("/ui/practices/D1001/pause", headers=cookie)
            token = re.search(r'name="csrf" value="([^"]+)"', confirm.text).group(1)
            with structlog.testing.capture_logs() as logs:
                paused = await browser.post("/ui/practices/D1001/pause", headers=cookie, data={"csrf": token})
            assert paused.status_code == 303 and paused.headers["location"] == "/ui/practices/D1001?done=pause"
            assert (await sup.client.get("/practices/D1001")).json()["state"] == "paused"
            assert [(line["who"], line["what"], line["office_id"]) for line in logs if line["event"] == "audit"] == [
                (f"uid={os.getuid()}", "pause", "D1001")]
        command.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await command.wait() == 0
    finally:
        command.kill()


def test_without_a_supervisor_the_command_exits_3(tmp_path):
    done = subprocess.run([str(BIN), "--admin-socket", str(tmp_path / "none.sock"), "console"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 3 and done.stdout == ""
    assert "is unreachable" in done.stderr and "is the supervisor running?" in done.stderr


async def test_json_prints_the_login_url_and_port_as_one_object(sup):
    command = await trio.lowlevel.open_process(
        [str(BIN), "--admin-socket", str(sup.socket), "console", "--json"], stdout=subprocess.PIPE,
    )
    try:
        with trio.fail_after(20):
            line = b""
            while not line.endswith(b"\n"):
                line += await command.stdout.receive_some(1)
        printed = json.loads(line)
        assert set(printed) == {"url", "port"}
        assert printed["url"].startswith(f"http://127.0.0.1:{printed['port']}/ui/login?token=")
        command.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await command.wait() == 0
    finally:
        command.kill()
