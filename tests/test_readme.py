"""Every shell example of README.md runs as written.

The README's ```` ```sh ```` blocks are extracted and run in order in one ``bash -e -o pipefail``
(so a block may use what an earlier one set, as a reader's shell would): a real ``sikka-sim`` and
a real ``sikka-supervisor run`` in the background, then ``curl`` on the admin socket. Nothing in
the commands is rewritten; the environment adapts them: the working directory is a fresh
temporary one holding a ``.venv`` link to this interpreter's environment (so ``.venv/bin/…`` and
``./.sikka`` resolve there), ``SIM_PORT`` is a free port, ``DATABASE_URL`` a fresh test database
(instead of the embedded server a reader's run starts), and no ``SIKKA_*`` setting leaks in.

Every JSON document the examples print is read back (the supervisor's own JSON log lines, which
share the terminal, are told apart by their ``event`` key): no error but the one the README
announces (the cancel of a completed writeback, 409 ``not_cancellable``), and the booking
completed at the simulator, exactly once.

The first block (``make demo`` / ``make test``) is not run here (``make test`` is what runs this
test, and ``tests/cli/test_demo.py`` runs the demo command): its two targets are checked to run
what the comments say.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV = Path(sys.executable).parent.parent
OFFICES = ("D1000", "D1001", "D1002")
# one key of each body the examples print, in order: health, practices, the booking waited for,
# onboard, failed writebacks, the cancel's error, available slots, patients, usage
SHAPES = [{"node"}, {"practices"}, {"writeback_id"}, {"practices"}, {"writebacks"}, {"error"}, {"source"}, {"total"},
          {"practices"}]
MAKE_BLOCK = ["make demo   # creates .venv, installs, runs the main job",
              "make test   # creates .venv, installs, runs the test suite (what CI runs)"]


def sh_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", markdown, flags=re.M | re.S)


def documents(output: str) -> list[dict]:
    """Every JSON object printed, in order (bodies without a newline may run into the next one)."""
    decoder, out, at = json.JSONDecoder(), [], 0
    while (at := output.find("{", at)) != -1:
        try:
            value, end = decoder.raw_decode(output, at)
        except json.JSONDecodeError:
            at += 1
            continue
        out.append(value)
        at = end
    return out


def test_the_two_commands_block_runs_what_it_says():
    blocks = sh_blocks(README.read_text())
    assert blocks[0].splitlines() == MAKE_BLOCK
    dry = subprocess.run(["make", "-n", "-W", "pyproject.toml", "demo", "test"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "-m venv .venv" in dry and "pip install --quiet -e '.[test]'" in dry
    assert ".venv/bin/sikka-supervisor demo" in dry
    assert '.venv/bin/python -m pytest -q -m "not slow"' in dry


def test_every_shell_example_runs_as_written(database_url):
    assert shutil.which("curl"), "curl is missing (.ci/run installs it)"
    blocks = sh_blocks(README.read_text())[1:]
    assert len(blocks) >= 2
    cwd = Path(tempfile.mkdtemp(prefix="sk-readme-", dir="/tmp"))  # short: the socket path has a limit
    (cwd / ".venv").symlink_to(VENV)
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIKKA_") and k != "DATABASE_URL"},
           "SIM_PORT": str(port), "DATABASE_URL": database_url}
    script = "\n".join(blocks)
    out, err = cwd / "stdout", cwd / "stderr"  # files: the background processes keep a pipe open
    with open(out, "w") as stdout_file, open(err, "w") as stderr_file:
        proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env,
                                stdout=stdout_file, stderr=stderr_file, start_new_session=True)
    try:
        proc.wait(timeout=180)
        stdout, stderr = out.read_text(), err.read_text()
        assert proc.returncode == 0, (stdout[-3000:], stderr[-3000:])
        printed = documents(stdout)
        bodies = [d for d in printed if "event" not in d]  # what the curl commands printed, in order
        assert [next(iter(SHAPES[i] & set(d)), None) for i, d in enumerate(bodies)] == [
            next(iter(shape)) for shape in SHAPES], bodies
        health, practices, booked, onboarded, failed, cancel, slots, patients, usage = bodies
        assert health["status"] == "ok" and 1 <= health["practices"] <= 3  # the others' actors may be starting
        assert {p["office_id"] for p in practices["practices"]} == set(OFFICES)
        assert booked["idempotency_key"] == "call-42" and booked["state"] == "completed", booked  # the DOC1 bug
        assert {p["office_id"] for p in onboarded["practices"]} == set(OFFICES)
        assert failed == {"writebacks": []}
        assert cancel["error"] == "not_cancellable"  # the only error, as the README says
        assert [d for d in bodies if set(d) == {"error", "detail", "field"}] == [cancel]
        assert slots["items"] and {p["office_id"] for p in usage["practices"]} == set(OFFICES)
        assert isinstance(patients["items"], list)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as sim:
            rows = sim.get("/_sim/practices/D1000/appointments").json()["items"]
        made = [r for r in rows if r["source"] == "writeback"]
        assert [(r["date"], r["time"], r["provider_id"]) for r in made] == [("2026-12-01", "10:30", "DDS1")]
    finally:
        with_group(proc.pid, signal.SIGTERM)  # the background sikka-sim and sikka-supervisor
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and with_group(proc.pid, 0):
            time.sleep(0.2)
        with_group(proc.pid, signal.SIGKILL)
        shutil.rmtree(cwd, ignore_errors=True)


def with_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the script's process group; whether any process of it was left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True
