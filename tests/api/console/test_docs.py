"""The console's routes are documented beside the API's: README.md's table names every one."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from actors.api.console.app import Console
from actors.api.console.session import Sessions

README = Path(__file__).resolve().parents[3] / "README.md"


async def no_api(request):
    raise AssertionError("not called")


def test_every_console_route_is_in_the_readme():
    deps = SimpleNamespace(settings=SimpleNamespace(node_id="n"), clock=lambda: datetime.now(UTC))
    console = Console(no_api, deps, Sessions())
    table = [line for line in README.read_text().splitlines() if line.startswith("| `") and "/ui/" in line]
    documented = {(m, p) for line in table for m, p in re.findall(r"`(GET|POST) (/ui/[^`?]*)[`?]", line)}
    assert {(r.method, r.path) for r in console.routes} == documented
