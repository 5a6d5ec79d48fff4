"""The supervisor's logic. General layout (trio-style: the core is pure, the shell does I/O):

Pure (import neither trio, httpx nor psycopg; take ``now``; return values):
- ``events``      the event vocabulary (msgspec tagged union) and its codec
- ``state``       ``evolve``: the fold from events to practice/writeback state
- ``core``        ``decide`` / ``next_step`` / ``recover``: every decision about a practice
- ``ratelimit``   the per-practice budget (sliding log, lanes, server hints)
- ``policy``      schedules: token refresh, polls, backoffs, quiet hours, the list planner
- ``reconcile``   what Sikka's answers mean; matching unknown writebacks
- ``onboarding``  ``authorized_practices`` grouped by office, as core commands
- ``operations``  the six writeback operations and payload validation
- ``outcomes``    what a Sikka call came to, as values
- ``timezones``   Windows zone names → IANA
- ``config``      settings parsed from the environment

Shell (thin, interprets the pure decisions):
- ``sikka``       the Sikka API v4 client over one shared ``httpx.AsyncClient``
- ``actor``       the practice actor
- ``supervision`` one-for-one restarts with intensity/period and parking
- ``practices``   the practice supervisor (one supervised actor per practice)
- ``applevel``    app-level work: batched list polling, onboarding
- ``admin``       the admin API handlers; ``http11`` the HTTP/1.1 server under them
- ``systemd``     sd_notify; ``logs`` structlog setup with redaction; ``cli`` the commands
"""
