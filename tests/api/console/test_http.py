"""The console over real sockets, without a browser: a supervisor in process (real PostgreSQL, the
simulator over HTTP) with its TCP listener. The login exchanges the API token for a session
cookie whose flags are checked; the cookie opens only /ui/; every posted form needs its CSRF
token and an action writes the API's audit line; every page carries the strict CSP and holds no
inline script or style; payload values stay off the pages unless SIKKA_UI_SHOW_PAYLOADS; on the
admin socket the console needs no login but a loopback Host."""

from __future__ import annotations

import os
import re

import httpx
import pytest
import structlog
import trio

from actors.api.console import pages
from actors.api.console.render import CSP
from actors.api.console.session import COOKIE, SESSION_S
from tests.support.processes import free_port
from tests.support.supervisor import booking

TOKEN = "console-test-token-0123456789"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def with_tcp(start, **env):
    port = free_port()
    sup = await start(env={"SIKKA_HTTP_LISTEN": f"127.0.0.1:{port}", "SIKKA_API_TOKEN": TOKEN, **env})
    return sup, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)


async def log_in(tcp: httpx.AsyncClient, **headers) -> httpx.Response:
    response = await tcp.post("/ui/login", data={"token": TOKEN, "next": "/ui/"}, headers=headers)
    tcp.cookies.clear()  # each request names its cookie itself
    return response


def session_cookie(response: httpx.Response) -> str:
    value = response.headers["set-cookie"].split(";")[0]
    assert value.startswith(f"{COOKIE}=")
    return value


def csrf_of(html: str) -> str:
    return CSRF.search(html).group(1)


async def state_of(sup, office_id: str = "D1000") -> str:
    return (await sup.client.get(f"/practices/{office_id}")).json()["state"]


async def test_on_tcp_the_login_exchanges_the_token_for_a_session_cookie_that_opens_only_the_console(start):
    sup, tcp = await with_tcp(start)
    async with tcp:
        first = await tcp.get("/ui/practices/D1000", params={"state": "failed"})
        assert first.status_code == 303
        assert first.headers["location"] == "/ui/login?next=/ui/practices/D1000%3Fstate%3Dfailed"
        form = await tcp.get("/ui/login")
        assert form.status_code == 200 and 'name="token"' in form.text and form.headers["content-security-policy"] == CSP
        wrong = await tcp.post("/ui/login", data={"token": "guess", "next": "/ui/"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers and "Wrong token" in wrong.text

        with structlog.testing.capture_logs() as logs:
            good = await tcp.post("/ui/login", data={"token": TOKEN, "next": "/ui/practices/D1000"})
        tcp.cookies.clear()
        assert good.status_code == 303 and good.headers["location"] == "/ui/practices/D1000"
        flags = good.headers["set-cookie"].split("; ")[1:]
        assert flags == ["Path=/ui/", f"Max-Age={SESSION_S}", "HttpOnly", "SameSite=Strict"]
        assert {"event": "audit", "who": "tcp", "what": "console_login", "office_id": None, "log_level": "info"} in logs
        cookie = {"cookie": session_cookie(good)}

        overview = await tcp.get("/ui/", headers=cookie)
        assert overview.status_code == 200 and "D1000" in overview.text and "D1001" in overview.text
        assert (await tcp.get("/practices", headers=cookie)).status_code == 401  # the cookie is not the token
        assert (await tcp.get("/ui/", headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200

        behind_tls = await log_in(tcp, **{"x-forwarded-proto": "https"})
        assert behind_tls.headers["set-cookie"].endswith("; Secure")
        expires, nonce, mac = session_cookie(good).partition("=")[2].split(".")
        for forged in (f"{int(expires) + 60}.{nonce}.{mac}", f"{expires}.{nonce}.{mac[::-1]}"):
            assert (await tcp.get("/ui/", headers={"cookie": f"{COOKIE}={forged}"})).status_code == 303

        refused = await tcp.post("/ui/logout", headers=cookie, data={"csrf": "nope"})
        assert refused.status_code == 403 and (await tcp.get("/ui/", headers=cookie)).status_code == 200
        out = await tcp.post("/ui/logout", headers=cookie, data={"csrf": csrf_of(overview.text)})
        assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
        assert (await tcp.get("/ui/", headers=cookie)).status_code == 303


async def test_an_action_needs_the_forms_csrf_token_and_writes_the_apis_audit_line(start):
    sup, tcp = await with_tcp(start)
    async with tcp:
        cookie = {"cookie": session_cookie(await log_in(tcp))}
        confirm = await tcp.get("/ui/practices/D1000/pause", headers=cookie)
        assert confirm.status_code == 200 and 'action="/ui/practices/D1000/pause"' in confirm.text
        token = csrf_of(confirm.text)
        other = {"cookie": session_cookie(await log_in(tcp))}
        other_token = csrf_of((await tcp.get("/ui/", headers=other)).text)
        for forged in ({}, {"csrf": ""}, {"csrf": "x" * 43}, {"csrf": other_token}):
            refused = await tcp.post("/ui/practices/D1000/pause", headers=cookie, data=forged)
            assert refused.status_code == 403 and "CSRF" in refused.text
        assert (await tcp.post("/ui/practices/D1000/pause", data={"csrf": token})).status_code == 303  # no cookie: log in
        assert await state_of(sup) == "active"

        with structlog.testing.capture_logs() as logs:
            done = await tcp.post("/ui/practices/D1000/pause", headers=cookie, data={"csrf": token})
        assert done.status_code == 303 and done.headers["location"] == "/ui/practices/D1000?done=pause"
        assert await state_of(sup) == "paused"
        assert [line for line in logs if line["event"] == "audit"] == [
            {"event": "audit", "who": "tcp", "what": "pause", "office_id": "D1000", "log_level": "info"}]
        page = await tcp.get("/ui/practices/D1000?done=pause", headers=cookie)
        assert "Paused." in page.text and 'id="practice-state"><span class="badge state-paused">' in page.text

        retried = await tcp.post("/ui/practices/D1000/retry-failed", headers=cookie, data={"csrf": token})
        assert retried.headers["location"] == "/ui/practices/D1000?done=retry-failed&n=0"
        assert (await tcp.post("/ui/practices/D1000/explode", headers=cookie, data={"csrf": token})).status_code == 404
        unknown = await tcp.post("/ui/practices/D9999/resume", headers=cookie, data={"csrf": token})
        assert unknown.status_code == 404 and "unknown_practice" in unknown.text


async def test_pages_carry_the_strict_csp_and_no_inline_script_or_style(sup):
    wid = (await sup.submit("D1000", {"operation": "book_appointment", "payload": booking(sup.sim, "D1000")})).json()[
        "writeback_id"]
    await sup.writeback(wid, wait=30)
    paths = ["/ui/", "/ui/alerts", "/ui/practices/D1000", "/ui/practices/D1000?state=completed",
             "/ui/practices/D1000/pause", f"/ui/writebacks/{wid}", "/ui/nowhere", "/ui/writebacks/not-an-id"]
    for path in paths:
        r = await sup.client.get(path)
        assert r.status_code in (200, 404), (path, r.status_code)
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        html = r.text
        assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/ui/static/console.js" defer>'], path
        assert "<style" not in html and not re.search(r"\sstyle=", html), path
        assert not re.search(r"\son[a-z]+=", html), path
    for name, kind in (("console.css", "text/css"), ("console.js", "text/javascript"), ("favicon.svg", "image/svg")):
        r = await sup.client.get(f"/ui/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert r.headers["content-security-policy"] == CSP
    assert (await sup.client.get("/ui/static/../admin.py")).status_code == 404
    assert (await sup.client.delete("/ui/")).headers["allow"] == "GET"
    assert (await sup.client.get("/ui")).headers["location"] == "/ui/"


async def test_the_writeback_page_tells_its_story_from_the_log(sup, monkeypatch):
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    ids = []
    for n in range(3):
        payload = booking(sup.sim, "D1000", n)
        ids.append((await sup.submit("D1000", {"operation": "book_appointment", "payload": payload})).json()[
            "writeback_id"])
    final = [(await sup.writeback(wid, wait=30)).json() for wid in ids]
    assert {w["state"] for w in final} == {"completed"}
    html = (await sup.client.get(f"/ui/writebacks/{ids[0]}")).text
    for text in ("Requested", "Sent to Sikka", "Acknowledged by Sikka", "Completed", "1 submit",
                 final[0]["sikka_writeback_id"], final[0]["created_id"]):
        assert text in html, text
    assert html.index("Requested") < html.index("Sent to Sikka") < html.index("Completed")
    first_page = (await sup.client.get("/ui/practices/D1000")).text
    assert f"/ui/writebacks/{ids[2]}" in first_page and f"/ui/writebacks/{ids[0]}" not in first_page
    older = re.search(r'href="([^"]+)" rel="next"', first_page).group(1).replace("&amp;", "&")
    assert older == f"/ui/practices/D1000?before={ids[1]}"
    second_page = (await sup.client.get(older)).text
    assert f"/ui/writebacks/{ids[0]}" in second_page and f"/ui/writebacks/{ids[1]}" not in second_page
    live = (await sup.client.get("/ui/practices/D1000", headers={"x-console-live": "1"})).text
    assert "Confirmation p95" in first_page and "Confirmation p95" not in live  # the poll skips the statistics
    bad = await sup.client.get("/ui/practices/D1000", params={"state": "lost"})
    assert bad.status_code == 400 and "state must be writeback states" in bad.text and "&#39;lost&#39;" in bad.text
    assert (await sup.client.get("/ui/writebacks/6f1c1d5e-3f43-4c55-9a4c-1f2b0c9d8e7a")).status_code == 404


NOTE = "Allergic to penicillin <script>alert(1)</script>"


@pytest.mark.parametrize("shown", [False, True])
async def test_payload_values_appear_only_when_configured(start, shown):
    sup = await start(env={"SIKKA_UI_SHOW_PAYLOADS": "true"} if shown else {})
    payload = booking(sup.sim, "D1000", 5, note=NOTE)
    wid = (await sup.submit("D1000", {"operation": "book_appointment", "payload": payload})).json()["writeback_id"]
    await sup.writeback(wid, wait=30)
    pages_seen = [(await sup.client.get(path)).text
                  for path in ("/ui/", "/ui/practices/D1000", f"/ui/writebacks/{wid}")]
    assert not any("<script>alert" in html for html in pages_seen)  # autoescaped, whatever is shown
    escaped = "Allergic to penicillin &lt;script&gt;alert(1)&lt;/script&gt;"
    assert (escaped in pages_seen[2]) is shown
    assert not any("penicillin" in html for html in pages_seen[:2])
    assert ("SIKKA_UI_SHOW_PAYLOADS=true</code> shows them" in pages_seen[2]) is not shown


async def test_on_the_socket_no_login_but_a_loopback_host(sup):
    page = await sup.client.get("/ui/")
    assert page.status_code == 200 and "Log out" not in page.text
    for host in ("localhost:8080", "127.0.0.1", "[::1]:9"):
        assert (await sup.client.get("/ui/", headers={"host": host})).status_code == 200, host
    rebound = await sup.client.get("/ui/", headers={"host": "evil.example:8080"})
    assert rebound.status_code == 403 and "loopback" in rebound.text
    assert (await sup.client.get("/ui/login")).headers["location"] == "/ui/"
    token = csrf_of((await sup.client.get("/ui/practices/D1000/pause")).text)
    assert (await sup.client.post("/ui/practices/D1000/pause", data={"csrf": "x"})).status_code == 403
    with structlog.testing.capture_logs() as logs:
        done = await sup.client.post("/ui/practices/D1000/pause", data={"csrf": token})
    assert done.status_code == 303 and await state_of(sup) == "paused"
    assert [(line["who"], line["what"]) for line in logs if line["event"] == "audit"] == [
        (f"uid={os.getuid()}", "pause")]
    with trio.fail_after(5):
        resumed = await sup.client.post("/ui/practices/D1000/resume", data={"csrf": token})
    assert resumed.status_code == 303 and await state_of(sup) == "active"
