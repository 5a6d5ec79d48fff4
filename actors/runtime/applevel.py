"""App-level work, on the App-Id/App-Key budget (``SIKKA_APP_RATE_LIMIT``) shared by all practices.

- ``run_lists``: the confirmation rounds. It gathers the targets of all actors
  (``list_targets``), asks the pure planner when the next round is due and how to serve it
  (``listplan.plan_round``): a ``GET /writebacks`` round (app-wide: one round serves every
  practice's pending and unknown writebacks), read page by page on the app budget and stopped
  once it has what it came for (``listread.RoundReader``), its items fanned out
  (``listplan.fan_out``) as ``ListOutcome`` messages to the actors; or, when that would cost
  more pages than the checks it serves (or the app budget is spent), a ``CheckByStatus`` to each
  practice with writebacks due: their actors read ``writeback_status`` on their own budgets.
  Actors poke it whenever their targets change, so a new acknowledgement is checked ~2 s later.
- ``onboard``: the authorization flow (``GET /authorized_practices``): secret keys stored
  encrypted, each office's ``PracticeListed``/``PracticeUnlisted`` decided by its actor (or
  directly when none runs), new practices started; up to ``ONBOARD_CONCURRENCY`` offices at once
  (20,000 one after the other took minutes). ``onboard(office_id)`` runs it for the one office
  an operator named: that brings an offboarded practice back (``NotAuthorized`` when Sikka does
  not list it). Single-flight: concurrent requests share one run. ``run_onboarding`` repeats it
  every ``SIKKA_ONBOARD_INTERVAL`` and on request.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import structlog
import trio

from actors.core import listplan, messages, onboarding
from actors.core import outcomes as oc
from actors.core.listplan import ListTarget
from actors.core.listread import ListMemory, RoundReader
from actors.core.ratelimit import BudgetStats, Lane
from actors.core.schedule import list_targets
from actors.core.state import Practice
from actors.monitoring import tracking
from actors.runtime.mailbox import Unavailable
from actors.runtime.calls import observe, read_list_round, take_budget
from actors.runtime.commit import decide_and_append
from actors.runtime.deps import Deps
from actors.runtime.practices import PracticeSupervisor
from store.db import DatabaseUnavailable

log = structlog.get_logger("applevel")

IDLE_RECHECK_S = 5.0  # how often the list task looks at the targets when nothing pokes it
ONBOARD_RETRY_S = 10.0  # the next onboarding round after one the database (or an actor) failed
TARGETS_CHUNK = 1000  # practices whose targets are gathered between two checkpoints
ONBOARD_CONCURRENCY = 32  # offices onboarded at once (their appends are committed in groups)


class OnboardFailed(Exception):
    """``authorized_practices`` could not be read; ``outcome`` says why."""

    def __init__(self, outcome):
        super().__init__(f"authorized_practices failed: {type(outcome).__name__}")
        self.outcome = outcome


class NotAuthorized(Exception):
    """An office named for onboarding that ``authorized_practices`` does not list."""

    def __init__(self, office_id: str):
        super().__init__(
            f"{office_id} is not in authorized_practices: the practice must authorize the application first"
        )
        self.office_id = office_id


class AppLevelStatistics(msgspec.Struct, frozen=True):
    list_rounds: int  # GET /writebacks rounds
    list_pages: int  # GET /writebacks calls (one per page)
    status_rounds: int  # rounds served by writeback_status reads on the practices' budgets
    status_checks: int  # writebacks handed to their actors for a writeback_status read
    onboardings: int
    budget: BudgetStats


class AppLevel:
    def __init__(self, deps: Deps, practices: PracticeSupervisor):
        self.deps = deps
        self.practices = practices
        self._targets_changed = trio.Event()
        self._onboard_lock = trio.Lock()
        self._onboard_requested = trio.Event()
        self.list_rounds = self.list_pages = self.status_rounds = self.status_checks = 0
        self.onboardings = 0
        self.last_onboard: list[dict] = []

    def statistics(self) -> AppLevelStatistics:
        budget = self.deps.app_budget.statistics(self.deps.clock().timestamp())
        return AppLevelStatistics(
            self.list_rounds, self.list_pages, self.status_rounds, self.status_checks, self.onboardings, budget
        )

    def targets_changed(self) -> None:
        self._targets_changed.set()

    # --- confirmation rounds ------------------------------------------------------------------

    async def run_lists(self) -> None:
        last_call_at = None
        memory = ListMemory()
        planned: dict[str, datetime] = {}  # writeback → when its actor was asked for a status read
        while True:
            targets = await self._targets()
            now = self.deps.clock()
            targets, planned = listplan.unplanned(targets, planned, now)
            app_free_at = datetime.fromtimestamp(self.deps.app_budget.free_at(Lane.STATUS, now.timestamp()), UTC)
            plan = listplan.plan_round(targets, now, last_call_at=last_call_at, memory=memory, app_free_at=app_free_at)
            if plan is None or plan.due_at > now:
                wait = IDLE_RECHECK_S if plan is None else (plan.due_at - now).total_seconds()
                with trio.move_on_after(min(wait, IDLE_RECHECK_S)):
                    await self._targets_changed.wait()
                self._targets_changed = trio.Event()
                continue
            if plan.status:
                self._check_by_status(plan.status, planned, now)
            if plan.method == "status":
                self.status_rounds += 1
                continue
            memory = await self._list_round(plan, targets, memory)
            last_call_at = self.deps.clock()

    def _check_by_status(self, status: tuple[ListTarget, ...], planned: dict[str, datetime], now: datetime) -> None:
        by_office: dict[str, list[str]] = {}
        for t in status:
            by_office.setdefault(t.office_id, []).append(t.writeback_id)
            planned[t.writeback_id] = now
        for office_id, ids in by_office.items():
            actor = self.practices.actors.get(office_id)
            if actor is not None:
                actor.tell(messages.CheckByStatus(writeback_ids=tuple(ids)))
        self.status_checks += len(status)

    async def _list_round(self, plan: listplan.ListPlan, targets: list[ListTarget], memory: ListMemory) -> ListMemory:
        reader = RoundReader(
            plan.ranges, memory, wanted=plan.wanted, known=plan.known, offices=plan.offices, complete=plan.complete
        )
        await read_list_round(self.deps, reader)
        fetched_at = self.deps.clock()
        self.list_rounds += 1
        self.list_pages += reader.pages
        outcomes = listplan.fan_out(
            targets, reader.items, plan.ranges, fetched_at, complete=reader.complete, failed=reader.failed
        )
        for office_id, outcome in outcomes.items():
            actor = self.practices.actors.get(office_id)
            if actor is not None:
                actor.tell(outcome)
        return reader.memory().pruned(fetched_at.date())

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

    async def onboard(self, office_id: str | None = None) -> list[dict]:
        """Run the authorization flow now (for every office, or only ``office_id``); one entry
        per office: its action."""
        async with self._onboard_lock:
            deps = self.deps
            sent_at = await take_budget(deps.app_budget, Lane.READ, deps.clock)
            result = await deps.client.authorized_practices()
            observe(deps.app_budget, result, sent_at, deps.clock().timestamp())
            if not isinstance(result.outcome, oc.Ok):
                raise OnboardFailed(result.outcome)
            known = {row.practice.office_id: row.practice for row in await deps.store.practices()}
            steps = onboarding.steps(known, result.outcome.value, named=office_id)
            if office_id is not None and not steps:
                raise NotAuthorized(office_id)
            report: list[dict] = [{} for _ in steps]
            limiter = trio.CapacityLimiter(ONBOARD_CONCURRENCY)
            failures: list[Exception] = []

            async def onboard_at(n: int, step: onboarding.OnboardStep) -> None:
                try:
                    async with limiter:
                        report[n] = await self._onboard_office(step, known.get(step.office_id))
                except Exception as exc:  # the first failure ends the round, raised as it was (not grouped)
                    failures.append(exc)
                    nursery.cancel_scope.cancel()

            async with trio.open_nursery() as nursery:
                for n, step in enumerate(steps):
                    nursery.start_soon(onboard_at, n, step)
            if failures:
                raise failures[0]
            self.last_onboard = report
            self.onboardings += 1
            return report

    async def _onboard_office(self, step: onboarding.OnboardStep, known: Practice | None) -> dict:
        """One office's step: its secret key stored, its command decided and appended, its actor
        started; its report entry. Offices are independent: many run at once, so their appends
        share the store's group commits."""
        deps = self.deps
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
        action = onboarding.action(events, known)
        if isinstance(command, messages.PracticeListed) and action not in ("deauthorized", "offboarded"):
            self.practices.start(step.office_id)
        if action not in ("unchanged", "offboarded"):
            log.info("onboarding.practice", office_id=step.office_id, action=action)
        return {"office_id": step.office_id, "practice_name": step.practice_name, "action": action}
