"""Alert notifications to a Slack incoming webhook (``SLACK_WEBHOOK_URL``).

The monitor ``publish``es each onset and clearing (``alerting.Transition``) without waiting: the
transition goes into a bounded channel, and when that is full it is dropped and counted, so a
slow or dead Slack never holds up the monitor or any actor. ``run`` (a task in the supervisor's
nursery) posts them one by one over the shared ``httpx.AsyncClient``:

- deduplicated: a transition whose phase is the one last sent for its (kind, office_id) is
  skipped, so each alert gets one message at onset and one at clearing;
- rate-limited: at most ``per_minute`` messages in any 60 s (Slack allows about one a second);
- retried with backoff (``base_delay`` doubling) on transport errors, 429 and 5xx, up to
  ``attempts`` tries; a 4xx otherwise is final (a revoked webhook will not heal by retrying).

A message names the kind, severity, office_id, practice name and the alert's short reason: no
payload values or secrets ever reach an alert. The webhook URL is itself a secret and is never
logged.
"""

from __future__ import annotations

from collections import deque

import httpx
import structlog
import trio

from actors.core.alerting import Transition
from actors.core.secret import Secret
from actors.monitoring import tracking
from actors.process.logs import scrub_text

log = structlog.get_logger("slack")

POST_TIMEOUT_S = 10.0
REASON_MAX = 200


def message(t: Transition) -> str:
    a = t.alert
    where = "all practices" if a.office_id is None else a.office_id
    if a.practice_name:
        where += f" ({a.practice_name})"
    if t.phase == "onset":  # the reason may quote an error: scrubbed of the process's secrets
        return f"[{a.severity.upper()}] {a.kind} · {where}: {scrub_text(a.message)[:REASON_MAX]}"
    held = int((t.at - a.since).total_seconds() // 60)
    return f"[CLEARED] {a.kind} · {where} (held {held} min)"


class SlackNotifier:
    def __init__(
        self,
        http: httpx.AsyncClient,
        url: Secret,
        *,
        capacity: int = 100,
        per_minute: int = 20,
        attempts: int = 5,
        base_delay: float = 1.0,
    ):
        self._http = http
        self._url = url
        self._send, self._receive = trio.open_memory_channel[Transition](capacity)
        self._per_minute = per_minute
        self._attempts = attempts
        self._base_delay = base_delay
        self._last_phase: dict[tuple[str, str | None], str] = {}
        self._sent_at: deque[float] = deque()
        self.sent = 0
        self.dropped = 0  # the channel was full
        self.failed = 0  # gave up after retries, or Slack refused it

    def publish(self, t: Transition) -> None:
        """Queue a transition; never blocks."""
        try:
            self._send.send_nowait(t)
        except trio.WouldBlock:
            self.dropped += 1
            log.warning("slack.dropped", kind=t.alert.kind, office_id=t.alert.office_id, phase=t.phase)

    async def run(self) -> None:
        async for t in self._receive:
            key = t.alert.key
            if self._last_phase.get(key) == t.phase:
                continue
            self._last_phase[key] = t.phase
            await self._rate_gate()
            try:
                sent = await self._post(message(t))
            except Exception as exc:  # a bug (or a URL httpx refuses): reported, never the end of the supervisor
                log.error("slack.crashed", kind=t.alert.kind, exc_info=exc)
                tracking.capture(exc)
                sent = False
            if sent:
                self.sent += 1
            else:
                self.failed += 1
                log.warning("slack.failed", kind=t.alert.kind, office_id=t.alert.office_id, phase=t.phase)

    async def _rate_gate(self) -> None:
        now = trio.current_time()
        while self._sent_at and self._sent_at[0] <= now - 60.0:
            self._sent_at.popleft()
        if len(self._sent_at) >= self._per_minute:
            await trio.sleep(self._sent_at[0] + 60.0 - now)
        self._sent_at.append(trio.current_time())

    async def _post(self, text: str) -> bool:
        for attempt in range(self._attempts):
            if attempt:
                await trio.sleep(self._base_delay * 2 ** (attempt - 1))
            try:
                response = await self._http.post(self._url.reveal(), json={"text": text}, timeout=POST_TIMEOUT_S)
            except httpx.HTTPError as exc:
                log.info("slack.retry", attempt=attempt + 1, error=type(exc).__name__)
                continue
            if response.is_success:
                return True
            if response.status_code != 429 and response.status_code < 500:
                return False
            log.info("slack.retry", attempt=attempt + 1, status=response.status_code)
        return False
