"""What people read from the admin API's answers: one renderer per kind of answer.

Each ``render_*`` takes an answer's body (already known to be a success: ``actors.cli.client.finish``
calls it) and prints it on stdout as a table or as aligned details (``actors.cli.tables``):
practices, writebacks, retried writebacks, rate usage, alerts, stats and the onboarding report.
A table renderer takes the ``width`` to fit (``None``: everything, ``--wide``): each names the
columns it drops first and those that may wrap, never a state, a code or an alert's message.
``describe`` names a Sikka outcome in a few words for the commands that call Sikka themselves.
"""

from __future__ import annotations

from actors.cli.tables import WIDTH, details, table, when


def show(text: str) -> None:
    print(text)


def _counts(c: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in c.items() if v) or "none"


def render_practice(p: dict) -> None:
    rate = p["rate"]
    show(
        details(
            [
                ("office", p["office_id"]),
                ("name", p["practice_name"]),
                ("practice ids", ", ".join(p["practice_ids"])),
                ("state", p["state"]),
                ("conditions", ", ".join(p["conditions"])),
                ("owner", p["owner"]),
                ("token expires", p["token_expires_at"]),
                ("rate", f"{rate['used_last_60s']}/{rate['limit']} in the last 60 s ({rate['remaining']} left)"),
                ("writebacks", _counts(p["writebacks"])),
                ("last error", p["last_error"]),
                ("restarts", p["restarts"]),
            ]
        )
    )


def render_practices(body: dict, width: int | None = WIDTH) -> None:
    rows = []
    for p in body["practices"]:
        c = p["writebacks"]
        rows.append(
            [
                p["office_id"],
                p["practice_name"],
                p["state"],
                ", ".join(p["conditions"]),
                f"{p['rate']['used_last_60s']}/{p['rate']['limit']}",
                c["queued"],
                c["deferred"],
                c["submitting"] + c["pending"],
                c["unknown"],
                c["completed"],
                c["failed"],
                p["last_error"],
            ]
        )
    if not rows:
        show("no practices registered")
        return
    headers = ["OFFICE", "NAME", "STATE", "COND", "RATE", "QUEUED", "DEFERRED", "PENDING", "UNKNOWN", "DONE",
               "FAILED", "ERROR"]
    show(table(headers, rows, width=width, drop=["RATE", "DONE", "UNKNOWN"], below=["ERROR", "COND"], wrap=["NAME"]))


def render_writeback(w: dict) -> None:
    error = w["error"]
    show(
        details(
            [
                ("writeback", w["writeback_id"]),
                ("office", w["office_id"]),
                ("operation", w["operation"]),
                ("state", w["state"]),
                ("error", f"{error['code']}: {error['message']}" if error else None),
                ("retryable", "yes" if w["retryable"] else "no"),
                ("idempotency key", w["idempotency_key"]),
                ("retry of", w["retry_of"]),
                ("sikka id", w["sikka_writeback_id"]),
                ("created id", w["created_id"]),
                ("requested", w["requested_at"]),
                ("submitted", w["submitted_at"]),
                ("completed", w["completed_at"]),
                ("sikka completed", w["sikka_completed_time"]),
                ("deadline", w["deadline_at"]),
                ("attempts", w["attempts"]),
                ("checks", w["checks"]),
                ("next check", w["next_check_at"]),
            ]
        )
    )


def render_writebacks(body: dict, width: int | None = WIDTH) -> None:
    rows = [
        [w["writeback_id"], w["state"], when(w["requested_at"]), w["operation"],
         f"{w['error']['code']}: {w['error']['message']}" if w["error"] else None]
        for w in body["writebacks"]
    ]
    if not rows:
        show("no writebacks")
        return
    headers = ["WRITEBACK", "STATE", "REQUESTED (UTC)", "OPERATION", "ERROR"]
    show(table(headers, rows, width=width, drop=["REQUESTED (UTC)"], below=["ERROR"]))


def render_retried(body: dict) -> None:
    show(f"retried {body['retried']} writeback{'s' if body['retried'] != 1 else ''}")
    for writeback_id in body["writebacks"]:
        show(f"  {writeback_id}")


def render_usage(body: dict, width: int | None = WIDTH) -> None:
    rows = [
        [
            u["office_id"],
            u["practice_name"],
            u["requests_used"],
            u["limit"],
            u["requests_remaining"],
            f"{u['percent_used']:.0f}%" if isinstance(u["percent_used"], (int, float)) else u["percent_used"],
            u["requests_today"],
            u["server_remaining"],
            None if u["server_reset_s"] is None else f"{u['server_reset_s']:g}s",
        ]
        for u in body["practices"]
    ]
    if not rows:
        show("no practices")
        return
    headers = ["OFFICE", "NAME", "USED", "LIMIT", "LEFT", "USED%", "TODAY", "SIKKA LEFT", "RESET"]
    show(table(headers, rows, width=width, drop=["RESET", "SIKKA LEFT", "TODAY"], wrap=["NAME"]))


def render_alerts(body: dict, width: int | None = WIDTH) -> None:
    rows = [[a["severity"], a["kind"], a["office_id"] or "-", when(a["since"]), a["message"]] for a in body["alerts"]]
    if not rows:
        show("no alerts")
        return
    headers = ["SEVERITY", "KIND", "OFFICE", "SINCE (UTC)", "MESSAGE"]
    show(table(headers, rows, width=width, drop=["SINCE (UTC)"], wrap=["MESSAGE"]))


def render_stats(body: dict) -> None:
    def seconds(v):
        return None if v is None else f"{v:.1f} s"

    rate = body["success_rate"]
    show(
        details(
            [
                ("requested", body["requested"]),
                ("completed", body["completed"]),
                ("failed", body["failed"]),
                ("cancelled", body["cancelled"]),
                ("success rate", None if rate is None else f"{rate * 100:.1f}%"),
                ("confirmation p50", seconds(body["confirmation_p50_s"])),
                ("confirmation p95", seconds(body["confirmation_p95_s"])),
            ]
        )
    )


def render_onboard(report: list[dict], width: int | None = WIDTH) -> None:
    if not report:
        show("no practices authorized or known")
        return
    rows = [[p["office_id"], p["practice_name"], p["action"]] for p in report]
    show(table(["OFFICE", "NAME", "ACTION"], rows, width=width, wrap=["NAME"]))
    for p in report:
        if p["action"] == "offboarded":
            show(f"{p['office_id']} is offboarded; `sikka-supervisor onboard --office {p['office_id']}` brings it back")


def describe(outcome) -> str:
    """A Sikka outcome in a few words (never a key)."""
    code = getattr(outcome, "code", "") or getattr(outcome, "kind", "") or getattr(outcome, "reason", "")
    return f"{type(outcome).__name__}{f' {code}' if code else ''}"
