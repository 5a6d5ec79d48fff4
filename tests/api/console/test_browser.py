"""The console in a real browser (headless Chromium, ``tests/support/browser``) against real
processes: ``sikka-sim`` and ``sikka-supervisor run`` with its TCP listener. Log in, see the
practices, open a writeback and read its timeline (completed under our eyes: live updates), pause
a practice and see it paused, see a change made elsewhere without reloading, refuse a forged form
without the CSRF token, read and act without JavaScript, keyboard and phone checks. Every page
is written to ``tests/artifacts/``. The tests run in file order on one browser and one supervisor
(module fixtures: under xdist each worker that runs some of them has its own); each test logs in
if it must and leaves the practices as it found them, so any subset runs in any order."""

from __future__ import annotations

import secrets
import time

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from bench.processes import Sim, Supervisor, bookings
from tests.support.browser import chromium, require_chromium, screenshot
from tests.support.processes import free_port

TOKEN = secrets.token_urlsafe(24)
LIVE_S = 10.0  # generous under load; the console polls each second


class Console:
    def __init__(self, supervisor: Supervisor, sim: Sim, driver, base: str):
        self.supervisor, self.sim, self.driver, self.base = supervisor, sim, driver, base

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def text(self, css: str) -> str:
        """The element's text (read again when a live update replaced it meanwhile)."""
        for _ in range(20):
            try:
                return self.driver.find_element(By.CSS_SELECTOR, css).text
            except StaleElementReferenceException:
                continue
        raise AssertionError(f"{css} kept being replaced")

    def wait(self, condition, seconds: float = LIVE_S):
        """Until ``condition()`` holds; a live update may replace an element while it is read."""
        ignored = (StaleElementReferenceException, NoSuchElementException)
        return WebDriverWait(self.driver, seconds, poll_frequency=0.1, ignored_exceptions=ignored).until(
            lambda d: condition())

    def at(self, path: str) -> None:
        """Until the browser has loaded ``path`` (a click or a key starts a navigation, and returns)."""
        self.wait(lambda: self.driver.current_url == self.base + path
                  and self.driver.execute_script("return document.readyState") == "complete")

    def api(self, method: str, path: str, **kw):
        with self.supervisor.client() as client:
            return client.request(method, path, **kw)

    def log_in(self) -> None:
        self.open("/ui/login?next=/ui/")
        if self.driver.current_url != self.base + "/ui/":  # no session yet
            self.driver.find_element(By.ID, "token").send_keys(TOKEN, Keys.ENTER)
            self.at("/ui/")

    def booking(self, *, completed: bool) -> tuple[str, dict]:
        """A booking at D1000 (the same one each time: its key), submitted: its id and payload."""
        office, key, payload = bookings(self.sim, ["D1000"], 1)[0]
        body = {"operation": "book_appointment", "payload": payload, "idempotency_key": key}
        wid = self.api("POST", f"/practices/{office}/writebacks", json=body).json()["writeback_id"]
        if completed:
            assert self.api("GET", f"/writebacks/{wid}", params={"wait": 30}).json()["state"] == "completed"
        return wid, payload


@pytest.fixture(scope="module")
def console(tmp_path_factory, module_database_url):
    require_chromium()
    tmp = tmp_path_factory.mktemp("console")
    sim = Sim(tmp, 3)
    port = free_port()
    supervisor = Supervisor(tmp, sim, module_database_url)
    supervisor.env |= {"SIKKA_HTTP_LISTEN": f"127.0.0.1:{port}", "SIKKA_API_TOKEN": TOKEN}
    supervisor.start()
    try:
        with chromium() as driver:
            yield Console(supervisor, sim, driver, f"http://127.0.0.1:{port}")
    finally:
        supervisor.terminate()
        sim.stop()


@pytest.fixture
def ui(console):
    """The browser, logged in."""
    console.log_in()
    return console


def test_log_in_and_see_the_practices(console):
    console.open("/ui/login")
    console.driver.delete_all_cookies()  # logged out
    console.open("/ui/")
    assert console.driver.current_url == f"{console.base}/ui/login?next=/ui/"
    screenshot(console.driver, "console-login")
    field = console.driver.find_element(By.ID, "token")
    assert console.driver.switch_to.active_element == field  # the form has the focus
    field.send_keys("not-the-token", Keys.ENTER)
    console.wait(lambda: "Wrong token." in console.text("main"))
    console.driver.find_element(By.ID, "token").send_keys(TOKEN, Keys.ENTER)
    console.at("/ui/")
    cookie = console.driver.get_cookie("sikka_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui/"
    console.wait(lambda: len(console.driver.find_elements(By.CSS_SELECTOR, "table.practices tbody tr")) == 3)
    rows = console.text("table.practices tbody")
    assert all(office in rows for office in ("D1000", "D1001", "D1002"))
    console.wait(lambda: console.text("#practice-D1000 td[data-label=State]") == "active")
    screenshot(console.driver, "console-overview")


def test_open_a_writeback_and_read_its_timeline_as_it_completes(ui):
    console = ui
    wid, payload = console.booking(completed=False)
    console.open("/ui/practices/D1000")
    console.driver.find_element(By.CSS_SELECTOR, f'a[href="/ui/writebacks/{wid}"]').click()
    console.at(f"/ui/writebacks/{wid}")
    assert console.text("h1").startswith("Book appointment")
    # the simulator finishes it within seconds: the page follows without a reload
    console.wait(lambda: console.text("#writeback-state") == "completed", 30)
    titles = [h.text.split(" ")[0] for h in console.driver.find_elements(By.CSS_SELECTOR, ".timeline h3")]
    assert titles[:3] == ["Requested", "Sent", "Acknowledged"] and titles[-1] == "Completed"
    states = [s.text for s in console.driver.find_elements(By.CSS_SELECTOR, ".timeline .after")]
    assert states[:3] == ["queued", "submitting", "pending"] and states[-1] == "completed"
    final = console.api("GET", f"/writebacks/{wid}").json()
    assert final["sikka_writeback_id"] in console.text("#writeback-timeline")
    assert "1 submit" in console.text(".calls")
    assert payload["patient_id"] not in console.text("main")  # payloads hidden by default
    screenshot(console.driver, "console-writeback")


def test_pause_a_practice_and_see_it_paused(ui):
    console = ui
    console.open("/ui/practices/D1001")
    screenshot(console.driver, "console-practice")
    console.driver.find_element(By.LINK_TEXT, "Pause").click()
    console.at("/ui/practices/D1001/pause")
    screenshot(console.driver, "console-confirm")
    console.driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    console.at("/ui/practices/D1001?done=pause")
    assert console.text("p.done") == "Paused."
    assert console.text("#practice-state") == "paused"
    assert console.api("GET", "/practices/D1001").json()["state"] == "paused"
    assert console.api("POST", "/practices/D1001/resume").status_code == 200


def test_a_change_made_elsewhere_shows_without_a_reload(ui):
    console = ui
    console.open("/ui/")
    console.driver.execute_script("window.notReloaded = true")
    cell = "#practice-D1001 td[data-label=State]"
    console.wait(lambda: console.text(cell) == "active")
    for action, state in (("pause", "paused"), ("resume", "active")):
        began = time.monotonic()
        assert console.api("POST", f"/practices/D1001/{action}").status_code == 200
        console.wait(lambda: console.text(cell) == state)
        print(f"the overview showed the {action} {time.monotonic() - began:.2f} s after the API answered")
    assert console.driver.execute_script("return window.notReloaded") is True
    assert "live" in console.text("#live-status")


def test_a_forged_form_without_the_csrf_token_is_refused(ui):
    console = ui
    console.open("/ui/")
    console.driver.execute_script("""
        const form = document.createElement("form");
        form.method = "post";
        form.action = "/ui/practices/D1002/pause";
        document.body.appendChild(form);
        form.submit();
    """)
    console.wait(lambda: console.text("h1") == "Refused")
    assert "CSRF token is missing or wrong" in console.text("main")
    screenshot(console.driver, "console-refused")
    assert console.api("GET", "/practices/D1002").json()["state"] == "active"


def test_readable_and_usable_without_javascript(ui):
    console = ui
    wid, _ = console.booking(completed=True)
    console.driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        console.open("/ui/practices/D1000")
        assert "live updates need JavaScript" in console.text("#live-status")  # the script did not run
        assert console.text("#practice-state") == "active"
        console.driver.find_element(By.CSS_SELECTOR, f'#practice-writebacks a[href="/ui/writebacks/{wid}"]').click()
        console.at(f"/ui/writebacks/{wid}")
        assert [s.text for s in console.driver.find_elements(By.CSS_SELECTOR, ".timeline .after")][-1] == "completed"
        console.open("/ui/practices/D1002")
        for action, state in (("Pause", "paused"), ("Resume", "active")):  # plain links and forms
            console.driver.find_element(By.LINK_TEXT, action).click()
            console.at(f"/ui/practices/D1002/{action.lower()}")
            console.driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
            console.at(f"/ui/practices/D1002?done={action.lower()}")
            assert console.text("p.done") == f"{action}d."
            assert console.text("#practice-state") == state
        screenshot(console.driver, "console-no-javascript")
    finally:
        console.driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


def test_keyboard_and_a_phone(ui):
    console = ui
    wid, _ = console.booking(completed=False)
    console.open("/ui/alerts")
    screenshot(console.driver, "console-alerts")
    console.open("/ui/")
    body = console.driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert console.driver.switch_to.active_element.text == "Skip to content"
    console.driver.switch_to.active_element.send_keys(Keys.ENTER)
    for _ in range(12):  # the links of the page, in order, from the content on
        console.driver.switch_to.active_element.send_keys(Keys.TAB)
        if console.driver.switch_to.active_element.get_attribute("href") == f"{console.base}/ui/practices/D1000":
            break
    console.driver.switch_to.active_element.send_keys(Keys.ENTER)
    console.at("/ui/practices/D1000")
    pages = ["/ui/", "/ui/alerts", "/ui/practices/D1000", "/ui/practices/D1000/pause", f"/ui/writebacks/{wid}"]
    console.driver.set_window_size(390, 844)
    try:
        for page in pages:
            console.open(page)
            overflow = console.driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, page  # no sideways scrolling on a phone
        screenshot(console.driver, "console-phone-writeback")
        console.open("/ui/")
        screenshot(console.driver, "console-phone")
    finally:
        console.driver.set_window_size(1280, 900)
