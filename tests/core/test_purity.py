"""The pure core is pure: every module of ``actors.core`` (and ``store.projections``, the fold's
rows) imports no I/O library, no clock and nothing of the shell.

Two checks: the source of each module (every import statement, at module level or inside a
function), and a fresh interpreter that imports them all and lists what got loaded (so a pure
module cannot reach an I/O library through another module either).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("trio", "httpx", "psycopg", "psycopg_pool", "h11", "structlog", "os", "socket", "time", "anyio")
SHELL = ("actors.runtime", "actors.api", "actors.cli", "actors.monitoring", "actors.process", "supervisor", "sim")
STORE_SHELL = ("store.",)  # of the store, only the projections are pure


def pure_modules() -> dict[str, Path]:
    modules = {
        "actors.core." + path.stem: path
        for path in sorted((ROOT / "actors" / "core").glob("*.py"))
        if path.stem != "__init__"
    }
    modules["store.projections"] = ROOT / "store" / "projections.py"
    return modules


def imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.append(node.module or "")
    return names


def offending(name: str) -> bool:
    top = name.split(".")[0]
    if top in FORBIDDEN:
        return True
    if any(name == shell or name.startswith(shell + ".") for shell in SHELL):
        return True
    return name.startswith(STORE_SHELL) and name != "store.projections"


def test_the_core_package_is_walked_whole():
    modules = pure_modules()
    assert {"actors.core.decide", "actors.core.schedule", "actors.core.state", "actors.core.events"} <= set(modules)
    assert len(modules) >= 20


def test_the_checks_catch_an_offender():
    assert offending("trio") and offending("os.path") and offending("actors.runtime.actor")
    assert offending("store.eventlog") and not offending("store.projections")
    assert not offending("datetime") and not offending("actors.core.state") and not offending("msgspec")


def test_no_pure_module_imports_io_a_clock_or_the_shell():
    found = {
        module: bad
        for module, path in pure_modules().items()
        if (bad := [name for name in imported_names(path) if offending(name)])
    }
    assert found == {}


def test_importing_the_pure_modules_loads_no_io_library():
    code = (
        "import json, sys\n"
        f"for m in {sorted(pure_modules())!r}: __import__(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(FORBIDDEN[:6])!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == []
