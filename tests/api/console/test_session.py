"""The console's sessions, CSRF tokens, one-time tokens and head check (no server), and the rate
history behind "over the last hour"."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import trio

from actors.api.console.rates import CHUNK, SAMPLES, RateHistory
from actors.api.console.session import (
    COOKIE, SESSION_S, Gate, OneTimeToken, Sessions, cookies, safe_next, secure_request,
)
from actors.api.http import Request
from actors.process import config


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def with_cookie(value: str) -> dict[str, str]:
    return {"cookie": f"other=1; {COOKIE}={value}"}


def test_a_minted_session_is_valid_until_it_expires():
    clock = Clock()
    sessions = Sessions(clock)
    value = sessions.mint()
    nonce = sessions.nonce(with_cookie(value))
    assert nonce is not None and value.startswith(f"{int(clock.now) + SESSION_S}.")
    clock.now += SESSION_S - 1
    assert sessions.nonce(with_cookie(value)) == nonce
    clock.now += 1
    assert sessions.nonce(with_cookie(value)) is None


def test_a_cookie_that_was_altered_or_signed_by_another_process_is_refused():
    clock = Clock()
    sessions, other = Sessions(clock), Sessions(clock)
    value = sessions.mint()
    expires, nonce, mac = value.split(".")
    assert sessions.nonce(with_cookie(f"{int(expires) + 3600}.{nonce}.{mac}")) is None  # a longer life
    assert sessions.nonce(with_cookie(f"{expires}.{nonce}x.{mac}")) is None
    altered = ("B" if mac[0] == "A" else "A") + mac[1:]  # (the last character: 1 in 64 draws left it as it was)
    assert sessions.nonce(with_cookie(f"{expires}.{nonce}.{altered}")) is None
    assert sessions.nonce(with_cookie(other.mint())) is None
    for junk in ("", "1.2", "..", "x.y.z", "١٢٣.n.m"):
        assert sessions.nonce(with_cookie(junk)) is None
    assert sessions.nonce({}) is None


def test_logging_out_revokes_the_session():
    sessions = Sessions(Clock())
    value = sessions.mint()
    sessions.revoke(sessions.nonce(with_cookie(value)))
    assert sessions.nonce(with_cookie(value)) is None
    assert sessions.nonce(with_cookie(sessions.mint())) is not None


def test_csrf_tokens_are_bound_to_the_session_and_the_process():
    sessions = Sessions(Clock())
    token = sessions.csrf("nonce-a")
    assert sessions.csrf_matches("nonce-a", token)
    assert not sessions.csrf_matches("nonce-b", token)
    assert not sessions.csrf_matches("socket", token)
    assert not sessions.csrf_matches("nonce-a", "")
    assert not Sessions(Clock()).csrf_matches("nonce-a", token)


def test_the_cookie_flags():
    name, value = Sessions.set_cookie("v", secure=False)
    assert name == "Set-Cookie"
    assert value == f"{COOKIE}=v; Path=/ui/; Max-Age={SESSION_S}; HttpOnly; SameSite=Strict"
    assert Sessions.set_cookie("v", secure=True)[1].endswith("; Secure")
    assert "Max-Age=0" in Sessions.clear_cookie()[1]


def test_secure_when_the_browser_is_on_tls():
    assert secure_request({"x-forwarded-proto": "https"})
    assert secure_request({"x-forwarded-proto": "HTTPS, http"})
    assert secure_request({"origin": "https://console.example"})
    assert not secure_request({"origin": "http://127.0.0.1:8780"})
    assert not secure_request({"x-forwarded-proto": "http"})
    assert not secure_request({})


def test_after_login_only_a_console_path_of_this_server():
    assert safe_next("/ui/practices/D1000?state=failed") == "/ui/practices/D1000?state=failed"
    for elsewhere in (None, "", "https://evil.example/ui/", "//evil.example/ui/", "/ui/login", "/practices",
                      "/ui/\\evil", "javascript:alert(1)"):
        assert safe_next(elsewhere) == "/ui/", elsewhere


def test_cookies_are_parsed_leniently():
    assert cookies({"cookie": "a=1; b = 2 ;c=x=y; junk; a=3"}) == {"a": "1", "b": "2", "c": "x=y"}


def test_a_one_time_token_logs_in_once():
    token = OneTimeToken()
    assert not token.redeem("wrong")
    assert token.redeem(token.value)
    assert not token.redeem(token.value)


def head(path: str, headers: dict | None = None, target: str | None = None) -> Request:
    return Request("GET", path, {}, headers or {}, b"", "tcp", target or path)


def test_the_gate_opens_the_login_page_and_static_files_and_sends_the_rest_to_log_in():
    sessions = Sessions(Clock())
    gate = Gate(sessions)
    assert gate.check(head("/ui/login")) is None
    assert gate.check(head("/ui/static/console.css")) is None
    refused = gate.check(head("/ui/practices/D1000", target="/ui/practices/D1000?state=failed"))
    assert refused.status == 303
    assert dict(refused.headers)["Location"] == "/ui/login?next=/ui/practices/D1000%3Fstate%3Dfailed"
    assert gate.check(head("/ui/", with_cookie(sessions.mint()))) is None


async def test_rate_history_sums_the_minutes_of_the_last_hour():
    used = {"D1": 0}
    budget = SimpleNamespace(statistics=lambda now: SimpleNamespace(used_last_60s=used["D1"], limit=200))
    actors = {"D1": SimpleNamespace(budget=budget)}
    history = RateHistory(lambda: actors, lambda: datetime(2026, 3, 10, tzinfo=UTC))
    assert history.last_hour("D1") is None
    for minute in range(SAMPLES + 5):
        used["D1"] = minute % 10
        await history.sample()
    hour = history.last_hour("D1")
    assert hour.minutes == SAMPLES and len(hour.samples) == SAMPLES
    assert hour.samples[-1] == (SAMPLES + 4) % 10 and hour.requests == sum(m % 10 for m in range(5, SAMPLES + 5))
    assert hour.peak == 9 and hour.peak_percent == 4.5
    del actors["D1"]
    await history.sample()
    assert history.last_hour("D1") is None


async def test_rate_history_lets_the_actors_run_while_it_samples_thousands():
    """Regression: one sample of 20,000 practices held the event loop for about 100 ms."""
    budget = SimpleNamespace(statistics=lambda now: SimpleNamespace(used_last_60s=1, limit=200))
    actors = {f"D{n}": SimpleNamespace(budget=budget) for n in range(4 * CHUNK)}
    history = RateHistory(lambda: actors, lambda: datetime(2026, 3, 10, tzinfo=UTC))
    turns = 0

    async def other_task():
        nonlocal turns
        while True:
            turns += 1
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        await trio.sleep(0)
        before = turns
        await history.sample()
        nursery.cancel_scope.cancel()
    assert turns - before >= 3  # it ran between the chunks
    assert all(history.last_hour(office).samples == (1,) for office in actors)


def test_the_payload_setting_is_a_yes_or_no():
    assert config.load({}).ui_show_payloads is False
    for raw, value in (("true", True), ("TRUE", True), ("1", True), ("yes", True), ("false", False), ("0", False),
                       ("", False), ("off", False)):
        assert config.load({"SIKKA_UI_SHOW_PAYLOADS": raw}).ui_show_payloads is value, raw
