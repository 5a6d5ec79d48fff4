"""The Grafana dashboard (``deploy/grafana/sikka-supervisor.json``) as queries, and the metric names
a PromQL expression reads.

- ``dashboard_queries()``: every PromQL expression of the dashboard (panel targets, the metric
  part of its ``label_values`` variables), by where it is;
- ``metric_names(expr)``: the metric names an expression selects. A small lexer, enough for the
  dashboard's PromQL: strings, label matchers, ranges and grouping clauses are dropped; what
  remains is a name when it is not a function or aggregation (followed by ``(``) nor a keyword.
- ``as_instant(expr)``: the expression with Grafana's variables replaced, for a real Prometheus.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "sikka-supervisor.json"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
            "inf", "nan"}
_LABEL_VALUES = re.compile(r"^label_values\((?P<metric>.+),\s*\w+\)$")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def dashboard_queries() -> dict[str, str]:
    """``{where: expr}`` for every query of the dashboard."""
    board = dashboard()
    out = {}
    for panel in _panels(board["panels"]):
        for target in panel.get("targets") or []:
            out[f"{panel['title']} / {target['refId']}"] = target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["definition"])
            assert match, variable["definition"]
            out[f"${variable['name']}"] = match.group("metric")
    return out


def metric_names(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        followed = text[match.end():].lstrip()
        if not followed.startswith("(") and match.group() not in KEYWORDS:
            names.add(match.group())
    return names


def as_instant(expr: str, office_id: str) -> str:
    """Grafana's variables as Prometheus would get them for one practice on every node."""
    return (expr.replace("$__rate_interval", "1m").replace('instance=~"$instance"', 'instance=~".+"')
            .replace("$office_id", office_id))
