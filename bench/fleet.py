"""``python -m bench.fleet``: what confirming a fleet's writebacks costs, at 1,000, 10,000 and 100,000
a day, today's strategy beside the one before issue 21.

Simulated time (trio's MockClock), the model ``bench.confirm`` uses: our actors, the app-level
task and the in-memory store (``bench.system``) against the in-process simulator, whose
``GET /writebacks`` also holds the application's earlier writebacks (``History``: ``--per-day``
a day, other practices', completed, for every listed day up to now: yesterday's and today's so
far are what a busy day's list holds). Writebacks arrive at random (Poisson) at ``--per-day`` a
day for ``--minutes`` over ``--practices`` practices, in a mix of operations (``MIX``: half of
them creates, which need a ``writeback_status`` read for ``created_id``), completed by the
simulator 2–20 s after acceptance; then until every one is final.

Two strategies on the same seed:

- ``ours``: page by page on the app budget, stopped once the due writebacks are found, or
  ``writeback_status`` reads when that is cheaper (``actors.core.listplan``);
- ``before`` (``ListsBefore``): every round reads every page of the range (500 a page) and takes
  one unit of the app budget per range, never a status read: the strategy before issue 21.

Figures per strategy and volume (``ours.100000.…``): ``status_per_confirmed`` ((list pages +
``writeback_status`` reads) / confirmed), ``app_calls_per_min`` (app-level calls over the run's
minutes), ``app_peak_60s`` (the busiest 60 s at the simulator) and ``app_peak_share`` (of
``SIKKA_APP_RATE_LIMIT``'s default, 200), ``app_429``, ``bound_p95`` and ``overshoot_max_s``
(as ``bench.confirm``: overshoot / max(2 s, 20 % of age)), ``confirmed``. Targets (issue 21) at
100,000 a day: ``ours.status_per_confirmed`` ≤ 1.5, ``ours.app_peak_share`` ≤ 0.8.
"""

from __future__ import annotations

import argparse
import functools
import random
import urllib.parse
from datetime import UTC, date, datetime, timedelta

import msgspec
import trio
import trio.testing

from actors.core import listplan
from actors.core.listread import ListMemory, RoundReader
from actors.core.ratelimit import Lane
from actors.core.schedule import list_targets
from actors.runtime.applevel import AppLevel
from actors.runtime.calls import observe, take_budget
from bench.common import count_requests, line, quiet_logs
from bench.confirm import figures as confirm_figures
from bench.confirm import measure
from bench.system import appointment_status, booking, new_patient, reschedule, start_system
from sim import SimConfig, Simulator

VOLUMES = (1_000, 10_000, 100_000)
APP_LIMIT = 200  # SIKKA_APP_RATE_LIMIT's default
MIX = (("book_appointment", 0.4), ("update_appointment_status", 0.3), ("reschedule_appointment", 0.2),
       ("create_patient", 0.1))
PAYLOADS = {"book_appointment": booking, "update_appointment_status": appointment_status,
            "reschedule_appointment": reschedule, "create_patient": new_patient}
PAGE_BEFORE = 500  # the client's page size before issue 21
HISTORY_ID = 50_000_000  # history ids start here (the simulator's own start below 1,000,000)


class History:
    """The simulator's ``GET /writebacks`` with ``per_day`` earlier writebacks a day in front of its
    own (oldest first, as it pages them). Each page asks the simulator for its own items (one
    app-level call there: its window and 429s count as ever) and serves the page of the whole."""

    def __init__(self, sim: Simulator, per_day: int):
        self.sim, self.per_day = sim, per_day
        self.handle = sim.handle
        sim.handle = self

    def __call__(self, method, target, headers, body=b"", *args, **kwargs):
        path, _, qs = target.partition("?")
        if method.upper() != "GET" or path != "/v4/writebacks":
            return self.handle(method, target, headers, body, *args, **kwargs)
        query = dict(urllib.parse.parse_qsl(qs))
        start, end = date.fromisoformat(query["startdate"]), date.fromisoformat(query["enddate"])
        counts = self._counts(start, end)
        history = sum(n for _, n in counts)
        page, limit = int(query.get("offset", 0)), int(query.get("limit", 50))
        tail = (page + 1) * limit > history  # the page reaches the simulator's own items
        own_query = urllib.parse.urlencode({**query, "offset": 0, "limit": 5000 if tail else 1})
        own = self.handle(method, f"{path}?{own_query}", headers, body, *args, **kwargs)
        if own.status != 200:
            return own
        answer = msgspec.json.decode(own.body)
        mine = answer["items"] if tail else []
        total = history + int(answer["total_count"])
        items = [self._item(counts, i) for i in range(page * limit, min((page + 1) * limit, history))]
        skip = max(0, page * limit - history)
        items += mine[skip:skip + limit - len(items)]
        envelope = {"offset": str(page), "limit": str(limit), "total_count": str(total), "items": items}
        return msgspec.structs.replace(own, body=msgspec.json.encode(envelope))

    def _counts(self, start: date, end: date) -> list[tuple[date, int]]:
        now = datetime.fromtimestamp(self.sim.clock(), UTC)
        out, day = [], start
        while day <= min(end, now.date()):
            midnight = datetime.combine(day, datetime.min.time(), UTC)
            elapsed = 1.0 if day < now.date() else (now - midnight).total_seconds() / 86400
            out.append((day, int(self.per_day * elapsed)))
            day += timedelta(days=1)
        return out

    def _item(self, counts: list[tuple[date, int]], i: int) -> dict:
        for day, n in counts:
            if i < n:
                at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(seconds=i * 86400 / max(n, 1))
                stamp = at.strftime("%Y-%m-%dT%H:%M:%S")
                return {"id": str(HISTORY_ID + (day.toordinal() % 1000) * 1_000_000 + i), "office_id": "D0001",
                        "method": "PATCH", "api_name": "appointments", "result": "completed",
                        "command_time": stamp, "completed_time": stamp, "api_request_body": "", "description": ""}
            i -= n
        raise IndexError(i)


class ListsBefore(AppLevel):
    """The app-level list task before issue 21: every round reads every page of its ranges (500 a
    page), paying one unit of the app budget per range; never a status read."""

    async def run_lists(self) -> None:
        last_call_at = None
        while True:
            now = self.deps.clock()
            targets = [t for actor in list(self.practices.actors.values()) for t in list_targets(actor.state)]
            plan = listplan.plan_round(targets, now, last_call_at=last_call_at, status_reads=False)
            if plan is None or plan.due_at > now:
                with trio.move_on_after(min(5.0, (plan.due_at - now).total_seconds() if plan else 5.0)):
                    await self._targets_changed.wait()
                self._targets_changed = trio.Event()
                continue
            reader = RoundReader(plan.ranges, ListMemory(), wanted=plan.wanted, known=plan.known,
                                 offices=plan.offices, complete=True, limit=PAGE_BEFORE)
            ranges_paid: set = set()
            while (request := reader.next_request()) is not None:
                (start, end), page = request
                if (start, end) not in ranges_paid:
                    ranges_paid.add((start, end))
                    sent_at = await take_budget(self.deps.app_budget, Lane.STATUS, self.deps.clock)
                result = await self.deps.client.writebacks_page(start, end, page, limit=PAGE_BEFORE)
                observe(self.deps.app_budget, result, sent_at, self.deps.clock().timestamp())
                reader.take((start, end), page, result.value if result.ok else None)
            last_call_at = self.deps.clock()
            self.list_rounds += 1
            self.list_pages += reader.pages
            for office_id, outcome in listplan.fan_out(targets, reader.items, plan.ranges, last_call_at,
                                                       complete=reader.complete, failed=reader.failed).items():
                if (actor := self.practices.actors.get(office_id)) is not None:
                    actor.tell(outcome)


async def drive(strategy: str, per_day: int, *, practices: int, minutes: float, delay: tuple[float, float],
                seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    config = SimConfig(practices=practices, seed=seed, writeback_delay=delay)
    async with trio.open_nursery() as nursery:
        system = await start_system(nursery, sim_config=config,
                                    app_level=ListsBefore if strategy == "before" else AppLevel)
        History(system.sim, per_day)
        counts = count_requests(system.sim)
        app_before = system.sim.stats()["app"]["requests"]
        offices, ids, t, n = system.offices(), [], 0.0, 0
        while True:
            t += rng.expovariate(per_day / 86400)
            if t > minutes * 60:
                break
            await trio.sleep_until(t)
            office = rng.choice(offices)
            operation = rng.choices([op for op, _ in MIX], [w for _, w in MIX])[0]
            n += 1
            payload = PAYLOADS[operation](system.sim, office, n)
            ids.append(await system.request(office, operation, payload, deadline_s=8 * 3600))
        rows = await system.wait_final(ids, timeout=6 * 3600)
        recorded = {r.sikka_writeback_id: r.completed_at.timestamp() for r in rows.values() if r.state == "completed"}
        run = measure(system.sim, counts, recorded)
        app = system.sim.stats()["app"]
        elapsed_min = max(minutes, trio.current_time() / 60)
        nursery.cancel_scope.cancel()
    out = confirm_figures([run]) if recorded else {"confirmed": 0}
    return {
        "status_per_confirmed": out.get("status_per_confirmed", float("nan")),
        "app_calls_per_min": (app["requests"] - app_before) / elapsed_min,
        "app_peak_60s": app["max_in_any_60s"],
        "app_peak_share": app["max_in_any_60s"] / APP_LIMIT,
        "app_429": app["status_429"],
        "bound_p95": out.get("bound_p95", float("nan")),
        "overshoot_max_s": out.get("overshoot_max_s", float("nan")),
        "confirmed": len(recorded),
        "requested": len(ids),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-day", type=int, nargs="+", default=list(VOLUMES))
    parser.add_argument("--strategies", nargs="+", choices=("ours", "before"), default=["ours", "before"])
    parser.add_argument("--practices", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--delay", default="2:20")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    quiet_logs()
    lo, hi = (float(x) for x in args.delay.split(":"))
    results: dict[str, float] = {}
    for per_day in args.per_day:
        for strategy in args.strategies:
            run = functools.partial(drive, strategy, per_day, practices=args.practices, minutes=args.minutes,
                                    delay=(lo, hi), seed=args.seed)
            figures = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
            for name, value in figures.items():
                results[f"{strategy}.{per_day}.{name}"] = value
                print(line(f"{strategy}.{per_day}.{name}", value), flush=True)
    return results


if __name__ == "__main__":
    main()
