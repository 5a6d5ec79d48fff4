"""Schemathesis (``st run``) against a real ``sikka-supervisor run`` serving the simulator, over
TCP with its bearer token: every check, the coverage, fuzzing and stateful phases (the links
from a submitted writeback to its reads), with only the exclusions ``schemathesis.toml`` beside
this file documents. The CI=true stage (``slow``).

The rate limits (ours and the simulator's) are far above what the run uses: a Sikka read never
waits for budget, so every answer comes within the client's timeout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.processes import Sim, Supervisor, wait_ready
from tests.support.processes import free_port

CONFIG = Path(__file__).with_name("schemathesis.toml")
TOKEN = "schemathesis-token-5d2a"
CALLBACK_KEY = "schemathesis-hook"
ST = Path(sys.executable).with_name("st")


@pytest.mark.slow
def test_schemathesis_finds_nothing(tmp_path, database_url):
    assert ST.exists() or shutil.which("st"), "schemathesis is part of the test extras"
    sim = Sim(tmp_path, 3, "--rate-limit", "1000000")
    supervisor = Supervisor(tmp_path, sim, database_url)
    listen = f"127.0.0.1:{free_port()}"
    supervisor.env |= {"SIKKA_HTTP_LISTEN": listen, "SIKKA_API_TOKEN": TOKEN, "SIKKA_RATE_LIMIT": "1000000",
                       "SIKKA_WEBHOOK_CALLBACK_KEY": CALLBACK_KEY}
    try:
        supervisor.start()
        wait_ready(supervisor, 3, 60)
        run = subprocess.run(
            [str(ST), "--config-file", str(CONFIG), "run", f"http://{listen}/openapi.json",
             "-H", f"Authorization: Bearer {TOKEN}", "-H", f"callback-key: {CALLBACK_KEY}",
             "--max-examples", "100", "--seed", "1", "--output-truncate", "false"],
            capture_output=True, text=True, timeout=2400, cwd=tmp_path,
        )
        report = run.stdout + run.stderr
        assert run.returncode == 0, report[-20000:]
        for phase in ("Coverage", "Fuzzing", "Stateful"):
            assert f"✅  {phase}" in report, report[-5000:]
        with supervisor.client() as admin:  # the two practices kept out of offboarding still run
            states = {p["office_id"]: p["state"] for p in admin.get("/practices").json()["practices"]}
        assert states["D1002"] == "offboarded" and states["D1000"] != "offboarded", states
    finally:
        if supervisor.proc is not None:
            supervisor.terminate()
        sim.stop()
