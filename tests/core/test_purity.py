"""The pure modules import neither trio, httpx nor psycopg (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = ["actors.core", "actors.leases", "actors.ratelimit", "actors.policy", "actors.timezones", "actors.reconcile", "actors.events", "actors.state", "actors.alerting"]


def test_pure_modules_import_no_io_library():
    code = (
        "import json, sys\n"
        f"for m in {PURE!r}: __import__(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('trio', 'httpx', 'psycopg', 'psycopg_pool', 'anyio'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == []
