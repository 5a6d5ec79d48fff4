"""``deploy/prometheus/``: the alerting rules cover every alert kind (interface section 4) and scrape
health, each with a ``for:`` and a runbook link to a section of ``deploy/README.md``; promtool
checks them and runs their unit tests (``alerts.test.yml``); and, in the ``CI=true`` stage, a real
Prometheus (Debian's ``prometheus``) configured from ``prometheus.example.yml`` scrapes a real
``sikka-supervisor run`` over TCP with its bearer token, evaluates the rules, fires
``SikkaSetupRequired`` for a revoked practice and answers every query of the Grafana dashboard."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from actors.core import alerting
from bench.processes import Sim, Supervisor, wait_ready
from tests.support.dashboards import as_instant, dashboard_queries
from tests.support.processes import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
EXAMPLE = DEPLOY / "prometheus" / "prometheus.example.yml"
INTERFACE_KINDS = set(alerting.KINDS)  # the kinds of interface section 4
KIND_RULE = re.compile(r'^sikka_alerts\{kind="(?P<kind>\w+)"\} > 0$')


def rules() -> list[dict]:
    [group] = yaml.safe_load(RULES.read_text())["groups"]
    return group["rules"]


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings (outside code blocks): lower case, punctuation but ``-``
    and ``_`` dropped, spaces as ``-``."""
    out, fenced = set(), False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            heading = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", heading).replace(" ", "-"))
    return out


def promtool() -> str:
    found = shutil.which("promtool")
    if not found and os.environ.get("CI") != "true":
        pytest.skip("promtool is missing (Debian's prometheus package; .ci/run installs it)")
    assert found, "promtool is missing (.ci/run installs Debian's prometheus package)"
    return found


def test_one_rule_per_alert_kind_and_one_for_scrape_health():
    kinds = {}
    for rule in rules():
        match = KIND_RULE.match(rule["expr"])
        if match:
            assert match.group("kind") not in kinds, rule
            kinds[match.group("kind")] = rule
    assert set(kinds) == INTERFACE_KINDS
    [down] = [r for r in rules() if r["expr"] == 'up{job="sikka-supervisor"} == 0']
    assert down["labels"]["severity"] == "critical"
    assert len(rules()) == len(INTERFACE_KINDS) + 1


def test_every_rule_waits_and_links_to_its_runbook_section():
    sections = anchors((DEPLOY / "README.md").read_text())
    names = [r["alert"] for r in rules()]
    assert len(set(names)) == len(names)
    for rule in rules():
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        base, _, anchor = rule["annotations"]["runbook_url"].partition("/deploy/README.md#")
        assert base == "https://example.invalid/sikka-supervisor" and anchor in sections, rule["alert"]


def test_the_unit_tests_cover_every_rule_quiet_then_firing():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {case["alertname"] for t in tests for case in t["alert_rule_test"] if case["exp_alerts"]}
    quiet = {case["alertname"] for t in tests for case in t["alert_rule_test"] if not case["exp_alerts"]}
    assert fired == quiet == {r["alert"] for r in rules()}


def test_promtool_checks_the_rules_and_runs_their_unit_tests():
    tool = promtool()
    checked = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0 and f"SUCCESS: {len(rules())} rules found" in checked.stdout, checked.stdout
    tested = subprocess.run([tool, "test", "rules", RULE_TESTS.name], capture_output=True, text=True,
                            cwd=RULE_TESTS.parent)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


# --- a real Prometheus against a real supervisor (CI=true stage) -------------------------------------


def prometheus_config(tmp: Path, target: str, token: str) -> Path:
    """``prometheus.example.yml`` with this run's target, token file and rules, evaluated every second."""
    config = yaml.safe_load(EXAMPLE.read_text())
    (tmp / "api-token").write_text(token)
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    [job] = config["scrape_configs"]
    job["scheme"] = "http"
    job["authorization"]["credentials_file"] = str(tmp / "api-token")
    job["static_configs"] = [{"targets": [target]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def until(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.5)


@pytest.mark.slow
def test_a_real_prometheus_fires_setup_required_for_a_revoked_practice(tmp_path, database_url):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing (.ci/run installs Debian's prometheus package)"
    sim = Sim(tmp_path, 2)
    supervisor = Supervisor(tmp_path, sim, database_url)
    listen = f"127.0.0.1:{free_port()}"
    supervisor.env |= {"SIKKA_HTTP_LISTEN": listen, "SIKKA_API_TOKEN": secrets.token_urlsafe(24)}
    port = free_port()
    prometheus = None
    try:
        supervisor.start()
        wait_ready(supervisor, 2, 60)
        config = prometheus_config(tmp_path, listen, supervisor.env["SIKKA_API_TOKEN"])
        with open(tmp_path / "prometheus.log", "w") as log:
            prometheus = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=10)

        def get(path: str, **params):
            try:
                r = api.get(path, params=params)
            except httpx.TransportError:
                return None
            return r.json()["data"] if r.status_code == 200 else None

        until("the supervisor scraped with its bearer token", lambda: any(
            t["health"] == "up" and t["labels"]["job"] == "sikka-supervisor"
            for t in (get("/targets") or {"activeTargets": []})["activeTargets"]), 60)
        groups = until("the rules loaded and evaluated", lambda: [
            g for g in (get("/rules") or {"groups": []})["groups"]
            if all(r.get("lastEvaluation", "").startswith("20") for r in g["rules"])], 60)
        assert [r["health"] for g in groups for r in g["rules"]] == ["ok"] * len(rules())
        for where, expr in dashboard_queries().items():  # every dashboard query is valid PromQL here
            r = api.get("/query", params={"query": as_instant(expr, "D1001")})
            assert r.status_code == 200 and r.json()["status"] == "success", (where, r.text)
        assert not get("/alerts")["alerts"]  # nothing holds on a healthy fleet

        sim.faults({"revoke": ["D1000"]})
        with supervisor.client() as admin:  # the key check would find it within a minute; now
            admin.post("/practices/D1000/refresh-token")
        began = time.monotonic()
        firing = until("SikkaSetupRequired firing", lambda: [
            a for a in get("/alerts")["alerts"] if a["labels"]["alertname"] == "SikkaSetupRequired"
            and a["state"] == "firing"], 150)
        assert time.monotonic() - began >= 60  # its for: 1m
        [alert] = firing
        assert alert["labels"] == {"alertname": "SikkaSetupRequired", "kind": "setup_required",
                                   "severity": "critical", "instance": listen, "job": "sikka-supervisor"}
        assert alert["value"] in ("1e+00", "1")
        assert alert["annotations"]["runbook_url"].endswith("/deploy/README.md#setup_required")
        assert {a["labels"]["alertname"] for a in get("/alerts")["alerts"]} == {"SikkaSetupRequired"}
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(30)
        if supervisor.proc is not None:
            supervisor.terminate()
        sim.stop()
