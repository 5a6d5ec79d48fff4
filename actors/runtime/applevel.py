"""App-level work, on the App-Id/App-Key budget (``SIKKA_APP_RATE_LIMIT``) shared by all practices.

- ``run_lists``: the batched confirmation poll. ``GET /writebacks`` is app-wide, so one call (a
  date range of at most 7 days, every page) serves every practice's pending and unknown
  writebacks. It gathers the targets of all actors (``list_targets``), asks the pure
  planner when the next call is due (``listplan.plan_list_call``), fetches, and fans the items
  out (``listplan.fan_out``) as ``ListOutcome`` messages to the actors. Actors poke it whenever
  their targets change, so a new acknowledgement is checked ~2 s later.
- ``onboard``: the authorization flow (``GET /authorized_practices``): secret keys stored
  encrypted, each office's ``PracticeListed``/``PracticeUnlisted`` decided by its actor (or
  directly when none runs), new practices started. Single-flight: concurrent requests share one
  run. ``run_onboarding`` repeats it every ``SIKKA_ONBOARD_INTERVAL`` and on request.
"""

from __future__ import annotations

import msgspec
import structlog
import trio

from actors.core import listplan, messages, onboarding
from actors.core import outcomes as oc
from actors.core.ratelimit import BudgetStats, Lane
from actors.core.schedule import list_targets
from actors.monitoring import tracking
from actors.runtime.mailbox import Unavailable
from actors.runtime.calls import fetch_writeback_lists, observe, take_budget
from actors.runtime.commit import decide_and_append
from actors.runtime.deps import Deps
from actors.runtime.practices import PracticeSupervisor
from store.db import DatabaseUnavailable

log = structlog.get_logger("applevel")

IDLE_RECHECK_S = 5.0  # how often the list task looks at the targets when nothing pokes it
ONBOARD_RETRY_S = 10.0  # the next onboarding round after one the database (or an actor) failed
TARGETS_CHUNK = 1000  # practices whose targets are gathered between two checkpoints


class OnboardFailed(Exception):
    """``authorized_practices`` could not be read; ``outcome`` says why."""

    def __init__(self, outcome):
        super().__init__(f"authorized_practices failed: {type(outcome).__name__}")
        self.outcome = outcome


class AppLevelStatistics(msgspec.Struct, frozen=True):
    list_calls: int  # GET /writebacks calls (one per date range)
    onboardings: int
    budget: BudgetStats


class AppLevel:
    def __init__(self, deps: Deps, practices: PracticeSupervisor):
        self.deps = deps
        self.practices = practices
        self._targets_changed = trio.Event()
        self._onboard_lock = trio.Lock()
        self._onboard_requested = trio.Event()
        self.list_calls = 0
        self.onboardings = 0
        self.last_onboard: list[dict] = []

    def statistics(self) -> AppLevelStatistics:
        budget = self.deps.app_budget.statistics(self.deps.clock().timestamp())
        return AppLevelStatistics(self.list_calls, self.onboardings, budget)

    def targets_changed(self) -> None:
        self._targets_changed.set()

    # --- batched confirmation -----------------------------------------------------------------

    async def run_lists(self) -> None:
        last_call_at = None
        while True:
            targets = await self._targets()
            now = self.deps.clock()
            plan = listplan.plan_list_call(targets, now, last_call_at=last_call_at)
            if plan is None or plan.due_at > now:
                wait = IDLE_RECHECK_S if plan is None else (plan.due_at - now).total_seconds()
                with trio.move_on_after(min(wait, IDLE_RECHECK_S)):
                    await self._targets_changed.wait()
                self._targets_changed = trio.Event()
                continue
            items, complete = await fetch_writeback_lists(self.deps, plan.ranges)
            fetched_at = self.deps.clock()
            last_call_at = fetched_at
            self.list_calls += len(plan.ranges)
            outcomes = listplan.fan_out(targets, items, plan.ranges, fetched_at, complete=complete)
            if not complete and not items:
                outcomes = {
                    office: messages.ListOutcome(ranges=plan.ranges, fetched_at=fetched_at, complete=False, failed=True)
                    for office in outcomes
                }
            for office_id, outcome in outcomes.items():
                actor = self.practices.actors.get(office_id)
                if actor is not None:
                    actor.tell(outcome)

    async def _targets(self) -> list:
        """Every running practice's list targets, with a checkpoint every ``TARGETS_CHUNK``
        practices (20,000 of them take tens of milliseconds: the loop must not stall that long)."""
        targets = []
        for n, actor in enumerate(list(self.practices.actors.values()), start=1):
            targets.extend(list_targets(actor.state))
            if n % TARGETS_CHUNK == 0:
                await trio.sleep(0)
        return targets

    # --- onboarding ---------------------------------------------------------------------------

    def request_onboarding(self) -> None:
        self._onboard_requested.set()

    async def run_onboarding(self) -> None:
        while True:
            wait = self.deps.settings.onboard_interval
            try:
                await self.onboard()
            except OnboardFailed as exc:
                log.warning("onboarding.failed", outcome=type(exc.outcome).__name__)
            except (DatabaseUnavailable, Unavailable) as exc:  # a database blip or a crashing actor: soon again
                log.warning("onboarding.failed", error=str(exc))
                wait = min(wait, ONBOARD_RETRY_S)
            except Exception as exc:  # a bug: reported (the log line has no frame's variables), next round
                log.error("onboarding.crashed", exc_info=exc)
                tracking.capture(exc)
            with trio.move_on_after(wait):
                await self._onboard_requested.wait()
            self._onboard_requested = trio.Event()

    async def onboard(self) -> list[dict]:
        """Run the authorization flow now; one entry per office: its action."""
        async with self._onboard_lock:
            deps = self.deps
            sent_at = await take_budget(deps.app_budget, Lane.READ, deps.clock)
            result = await deps.client.authorized_practices()
            observe(deps.app_budget, result, sent_at, deps.clock().timestamp())
            if not isinstance(result.outcome, oc.Ok):
                raise OnboardFailed(result.outcome)
            known = {row.practice.office_id: row.practice for row in await deps.store.practices()}
            report = []
            for step in onboarding.steps(known, result.outcome.value):
                command = step.command
                if step.secret_key and step.secret_key != await deps.credentials.secret(step.office_id, "secret_key"):
                    await deps.credentials.put_secret(step.office_id, "secret_key", step.secret_key)
                    command = msgspec.structs.replace(command, secret_changed=True)
                actor = self.practices.actors.get(step.office_id)
                if actor is not None:
                    decision = await actor.ask(command)
                else:
                    decision = await decide_and_append(deps, step.office_id, command)
                events = decision if isinstance(decision, list) else []
                action = onboarding.action(events)
                if isinstance(command, messages.PracticeListed) and action != "deauthorized":
                    self.practices.start(step.office_id)
                report.append({"office_id": step.office_id, "practice_name": step.practice_name, "action": action})
                if action != "unchanged":
                    log.info("onboarding.practice", office_id=step.office_id, action=action)
            self.last_onboard = report
            self.onboardings += 1
            return report
