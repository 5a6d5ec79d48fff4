"""Tables sized to the terminal, the renderers built on them, and the commands' help (issue 17).

Regressions: at 80 columns a ``setup_required`` row became "Harbo…", "spu_o…", "API200…";
``alerts`` cut messages at ~26 characters; ``writebacks`` showed "book_appoint…" and had no error
column; QUEUED added deferred silently; subcommands had no description or example; ``submit
--help`` listed no payload fields; no help named the exit statuses or the settings.
"""

from __future__ import annotations

import argparse
import re

import pytest

from actors.cli import args as cli_args
from actors.cli import render, tables
from actors.core.operations import OPERATIONS

NAME = "Harborview Family Dentistry of Greater Springfield"
ERROR = "API2003: Refresh key is invalid or deleted. The practice must authorize the app again."
MESSAGE = ("D1001 needs setup: Sikka refused its keys (API2003: Refresh key is invalid or deleted); "
           "the practice must authorize the app again")


def practice(office_id: str, state: str, *, name: str = "Smile Dental", conditions=(), error=None, **counts) -> dict:
    writebacks = dict.fromkeys(("queued", "deferred", "submitting", "pending", "unknown", "completed", "failed",
                                "cancelled"), 0)
    return {"office_id": office_id, "practice_name": name, "state": state, "conditions": list(conditions),
            "rate": {"used_last_60s": 3, "limit": 60, "remaining": 57}, "writebacks": {**writebacks, **counts},
            "last_error": error}


PRACTICES = {"practices": [
    practice("D1000", "active", queued=4, deferred=7, completed=120),
    practice("D1001", "setup_required", name=NAME, conditions=["spu_offline", "token_expiring"], error=ERROR),
]}


def printed(capsys, render_it, body, width) -> list[str]:
    render_it(body, width)
    return capsys.readouterr().out.splitlines()


def words_in_order(text: str, lines: list[str]) -> bool:
    """``text`` appears whole in the output once the layout's whitespace is folded."""
    return text in " ".join(" ".join(lines).split())


def test_practices_fit_80_columns_without_cutting_states_names_conditions_or_errors(capsys):
    lines = printed(capsys, render.render_practices, PRACTICES, 80)
    assert max(map(len, lines)) <= 80 and "…" not in "".join(lines), lines
    assert lines[0].split()[:3] == ["OFFICE", "NAME", "STATE"]
    (row,) = [line for line in lines if line.startswith("D1001")]
    assert "setup_required" in row.split()
    assert all(word in " ".join(lines).split() for word in NAME.split())
    assert words_in_order("cond: spu_offline, token_expiring", lines) and words_in_order(f"error: {ERROR}", lines)


def test_queued_and_deferred_are_separate_columns(capsys):
    lines = printed(capsys, render.render_practices, PRACTICES, None)
    header, first = lines[0].split(), lines[1].split()
    assert header[header.index("QUEUED"):header.index("QUEUED") + 2] == ["QUEUED", "DEFERRED"]
    # the name is two words and COND is empty: each column's value sits at its header's index
    assert [first[header.index("QUEUED")], first[header.index("DEFERRED")]] == ["4", "7"], lines


def test_wide_shows_every_column_on_one_line_per_row(capsys):
    lines = printed(capsys, render.render_practices, PRACTICES, None)
    assert len(lines) == 3 and max(map(len, lines)) > 80
    assert lines[0].split() == ["OFFICE", "NAME", "STATE", "COND", "RATE", "QUEUED", "DEFERRED", "PENDING",
                                "UNKNOWN", "DONE", "FAILED", "ERROR"]
    assert NAME in lines[2] and ERROR in lines[2] and "spu_offline, token_expiring" in lines[2]


def test_alert_messages_wrap_and_are_never_cut(capsys):
    body = {"alerts": [{"severity": "critical", "kind": "setup_required", "office_id": "D1001",
                        "since": "2026-03-10T09:00:12.345Z", "message": MESSAGE}]}
    for width in (60, 80, 100):
        lines = printed(capsys, render.render_alerts, body, width)
        assert max(map(len, lines)) <= width and words_in_order(MESSAGE, lines), (width, lines)
        assert lines[1].split()[:3] == ["critical", "setup_required", "D1001"]
    assert printed(capsys, render.render_alerts, body, None)[1].endswith(MESSAGE)


def test_writebacks_show_the_whole_operation_and_an_error_column(capsys):
    body = {"writebacks": [
        {"writeback_id": "6f1c2a4e-3b7d-4e8f-9a0b-1c2d3e4f5a6b", "state": "failed",
         "requested_at": "2026-03-10T09:00:12.345Z", "operation": "book_appointment",
         "error": {"code": "sikka_rejected", "message": "the slot is taken at the practice (API4001)"}},
        {"writeback_id": "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5", "state": "queued",
         "requested_at": "2026-03-10T09:01:00.000Z", "operation": "update_appointment_status", "error": None},
    ]}
    lines = printed(capsys, render.render_writebacks, body, 80)
    assert max(map(len, lines)) <= 80 and "…" not in "".join(lines)
    assert lines[1].split()[1] == "failed" and "book_appointment" in lines[1].split()
    assert "update_appointment_status" in " ".join(lines).split()
    assert words_in_order("error: sikka_rejected: the slot is taken at the practice (API4001)", lines)
    wide = printed(capsys, render.render_writebacks, body, None)
    assert wide[0].split()[-1] == "ERROR" and wide[1].endswith("sikka_rejected: the slot is taken at the practice "
                                                               "(API4001)")


def test_a_table_drops_the_columns_named_first_then_wraps_never_splitting_a_word():
    rows = [["D1000", "a name in several words", "setup_required", "2026-03-10 09:00"]]
    text = tables.table(["OFFICE", "NAME", "STATE", "SINCE"], rows, width=40, drop=["SINCE"], wrap=["NAME"])
    assert text.splitlines() == [
        "OFFICE  NAME              STATE",
        "D1000   a name in         setup_required",
        "        several words",
    ]
    narrow = tables.table(["OFFICE", "STATE"], [["D1000", "setup_required"]], width=10)
    assert narrow.splitlines()[1].split() == ["D1000", "setup_required"]  # wider than asked, never cut


def test_the_terminal_width_is_the_terminals_or_80(monkeypatch):
    monkeypatch.setenv("COLUMNS", "132")
    assert tables.terminal_width() == 132
    monkeypatch.delenv("COLUMNS")
    assert tables.terminal_width() == 80  # pytest's stdout is not a terminal


# --- help ----------------------------------------------------------------------------------------


def subcommands() -> dict[str, argparse.ArgumentParser]:
    (group,) = [a for a in cli_args.parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(group.choices)


def test_every_subcommand_has_a_description_an_example_and_json():
    for name, sub in subcommands().items():
        text = sub.format_help()
        assert sub.description and len(sub.description) > 20, name
        assert re.search(rf"example:\n  sikka-supervisor {name}\b", text), (name, text)
        assert "--json" in text, name


def test_submit_help_lists_each_operations_fields():
    text = subcommands()["submit"].format_help()
    names = list(OPERATIONS)
    for spec in OPERATIONS.values():
        block = text[text.index(f"\n  {spec.name}  ("):]
        later = [block.index(f"\n  {n}  (") for n in names[names.index(spec.name) + 1:]]
        block = " ".join(block[:later[0] if later else block.index("formats:")].split())
        for label, fields in (("required", spec.required), ("at least one of", spec.one_of),
                              ("optional", spec.optional)):
            assert not fields or f"{label}: {', '.join(fields)}" in block, (spec.name, label, block)


def test_every_help_fits_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    for name, sub in [("sikka-supervisor", cli_args.parser()), *subcommands().items()]:
        assert max(map(len, sub.format_help().splitlines())) <= 80, name


def test_help_ends_with_the_exit_statuses_and_the_main_settings():
    text = cli_args.parser().format_help()
    tail = text[text.index("exit status:"):]
    for line in ("0  success", "2  bad usage, bad input (an unknown or malformed office or writeback id\n",
                 "3  the admin socket is unreachable", "4  --wait ran out before a final state"):
        assert line in tail
    for setting in ("SIKKA_APP_ID", "DATABASE_URL", "SIKKA_DATA_DIR", "SIKKA_ADMIN_SOCKET", "SIKKA_SECRETS_KEY",
                    "SIKKA_HTTP_LISTEN"):
        assert setting in tail[tail.index("main settings"):]


@pytest.mark.parametrize("command", ["status", "writebacks", "usage", "alerts", "replay", "onboard"])
def test_the_table_commands_take_wide(command):
    assert "--wide" in subcommands()[command].format_help()
