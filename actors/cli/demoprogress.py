"""What ``sikka-supervisor demo`` prints while it follows its writebacks (pure; ``actors.cli.demo``
feeds it once a second).

A line of counts when they changed; while they stand still, why: ``wait_reasons`` reads the
writebacks not yet final by practice, each practice's status (its rate budget, its conditions) and
the demo's own SPU-offline spell, and names what holds each practice's work (the SPU offline, the
practice held to its lowered rate limit, deferred writebacks waiting for their retry, writebacks
pending at Sikka). ``Progress`` prints the reason again only when it changes, or every
``REPEAT_S`` while nothing moves, instead of the same line every second.
"""

from __future__ import annotations

import math

import msgspec

from actors.core.state import FINAL_STATES, WRITEBACK_STATES

REPEAT_S = 5.0  # a standing reason (or standing counts) is printed again after this long
RATE_HELD = 0.5  # a practice that used this share of its limit in the last 60 s waits for budget
OPEN = tuple(s for s in WRITEBACK_STATES if s not in FINAL_STATES)


class Reason(msgspec.Struct, frozen=True):
    office_id: str
    kind: str  # "spu_offline" | "rate" | "deferred" | "pending" | "queued"
    text: str


def progress_line(elapsed: float, counts: dict[str, int], submitted: int, total: int) -> str:
    parts = [f"queued {counts['queued']}", f"pending {counts['pending']}", f"completed {counts['completed']}",
             f"failed {counts['failed']}"]
    for state in ("submitting", "deferred", "unknown", "cancelled"):
        if counts[state]:
            parts.append(f"{state} {counts[state]}")
    line = f"[{elapsed:6.1f}s] " + " · ".join(parts)
    if submitted < total:
        line += f"  (submitted {submitted}/{total})"
    return line


def _writebacks(n: int) -> str:
    return f"{n} writeback{'' if n == 1 else 's'}"


def wait_reasons(
    views: list[dict], practices: list[dict], *, spu_offline: str | None, spu_back_in_s: float | None,
    completes_in: tuple[float, float],
) -> list[Reason]:
    """Why the writebacks not yet final wait, one reason per practice that has some.

    ``views``: the latest ``Writeback`` bodies; ``practices``: ``PracticeStatus`` bodies;
    ``spu_offline``: the office whose SPU the demo has taken offline now (``spu_back_in_s`` until it
    is back); ``completes_in``: the simulator's delay between acceptance and completion."""
    waiting: dict[str, dict[str, int]] = {}
    for wb in views:
        if wb["state"] in OPEN:
            states = waiting.setdefault(wb["office_id"], dict.fromkeys(OPEN, 0))
            states[wb["state"]] += 1
    status = {p["office_id"]: p for p in practices}
    out = []
    for office, states in sorted(waiting.items()):
        n = sum(states.values())
        practice = status.get(office, {})
        rate = practice.get("rate") or {}
        limit, used = rate.get("limit", 0), rate.get("used_last_60s", 0)
        if office == spu_offline:
            back = f", back in {math.ceil(spu_back_in_s)} s" if spu_back_in_s is not None else ""
            out.append(Reason(office, "spu_offline", f"{office}'s SPU is offline (the demo's fault{back}): "
                                                     f"{_writebacks(n)} wait for it"))
        elif "rate_limited" in practice.get("conditions", ()) or (limit and used >= RATE_HELD * limit):
            out.append(Reason(office, "rate", f"{office} is held to {limit} requests a minute ({used} sent in the "
                                              f"last 60 s): {_writebacks(n)} wait for its budget"))
        elif states["deferred"]:
            out.append(Reason(office, "deferred", f"{office}: {_writebacks(states['deferred'])} deferred after "
                                                  "Sikka's 412 (SPU offline), retried with backoff"))
        elif states["pending"] or states["unknown"]:
            low, high = completes_in
            out.append(Reason(office, "pending", f"{office}: {_writebacks(n)} accepted by Sikka (it completes each "
                                                 f"{low:g}–{high:g} s after accepting it)"))
        else:
            out.append(Reason(office, "queued", f"{office}: {_writebacks(n)} queued, about to be sent"))
    return out


class Progress:
    """The lines to print at each tick: the counts when they changed; the reasons (one line each)
    when they changed (by practice and kind), or, while the counts stand still, ``REPEAT_S`` after
    the last print; standing counts with nothing to explain them, every ``REPEAT_S``."""

    def __init__(self) -> None:
        self.last_counts: str | None = None
        self.last_reasons: list[tuple[str, str]] = []
        self.last_at = -math.inf

    def lines(self, elapsed: float, counts: dict[str, int], submitted: int, total: int,
              reasons: list[Reason]) -> list[str]:
        line = progress_line(elapsed, counts, submitted, total)
        counts_part = line.split("] ", 1)[1]
        keys = [(r.office_id, r.kind) for r in reasons]
        moved = counts_part != self.last_counts
        stale = elapsed - self.last_at >= REPEAT_S
        out = [line] if moved or (stale and not reasons) else []
        if reasons and (keys != self.last_reasons or (stale and not moved)):
            head = f"[{elapsed:6.1f}s] waiting: "
            out += [head + reasons[0].text] + [" " * len(head) + r.text for r in reasons[1:]]
        self.last_reasons = keys
        if out:
            self.last_counts, self.last_at = counts_part, elapsed
        return out
