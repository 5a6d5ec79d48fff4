"""``deploy/grafana/sikka-supervisor.json``: the sections an operator needs, and every query names
only metrics a running supervisor exports (checked against the ``/metrics`` of a whole supervisor
started in-process). ``tests/deploy/test_prometheus.py`` runs every query on a real Prometheus."""

from __future__ import annotations

import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.support.dashboards import dashboard, dashboard_queries, metric_names
from tests.support.supervisor import OFFICES, submission

SECTIONS = ["Fleet overview", "Practice $office_id", "Writebacks", "Rate budget", "Confirmation latency",
            "Loop lag and event store"]
PROMETHEUS_MADE = {"up"}  # the scrape's own health series, made by Prometheus for every target


def test_metric_names_of_promql():
    assert metric_names('sum by (state) (sikka_writebacks{office_id="D1", state=~"a|b"})') == {"sikka_writebacks"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(x_bucket{i=~\"$i\"}[$__rate_interval])))") == {
        "x_bucket"}
    assert metric_names("topk(10, 100 * a{i=\"1\"} / b) > 0 and on (office_id) c offset 5m") == {"a", "b", "c"}
    assert metric_names('up{job="sikka-supervisor"} == 0') == {"up"}


def test_the_dashboard_has_every_section_and_every_panel_a_query():
    board = dashboard()
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == SECTIONS
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["description"], panel["title"]
            assert all(t["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for t in panel["targets"])
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "instance", "office_id"}


async def test_every_query_names_only_metrics_the_supervisor_exports(start):
    sup = await start()
    r = await sup.submit(OFFICES[0], submission(sup.sim, OFFICES[0]))
    assert (await sup.writeback(r.json()["writeback_id"], wait=30)).json()["state"] == "completed"
    await trio.sleep(0.5)
    text = (await sup.client.get("/metrics")).text
    exported = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    queries = dashboard_queries()
    assert len(queries) >= 25
    used = set()
    for where, expr in queries.items():
        names = metric_names(expr)
        assert names, (where, expr)
        assert names <= exported | PROMETHEUS_MADE, (where, names - exported)
        used |= names
    # the dashboard covers every series the supervisor documents
    for family in ("sikka_requests_total", "sikka_rate_used", "sikka_rate_limit", "sikka_writebacks",
                   "sikka_token_expiry_seconds", "sikka_actor_restarts_total", "sikka_alerts",
                   "sikka_writeback_confirmation_seconds_bucket", "sikka_writeback_overshoot_seconds_bucket",
                   "sikka_event_append_seconds_bucket", "sikka_loop_lag_seconds_bucket"):
        assert family in used, family
