"""The pure core: every decision the supervisor makes, with no I/O.

Functions take ``now`` (and state, messages, settings) and return values; none imports trio,
httpx, psycopg, h11, structlog, os, socket or time, or anything of the shell
(``tests/core/test_purity.py``). The shell interprets what they return, and replay uses the same
fold as the live actor.

- ``events``       the event vocabulary (a msgspec tagged union) and its codec
- ``state``        ``evolve``/``fold``: events to practice and writeback state
- ``messages``     commands and inputs in, ``Refused``/``Duplicate`` and steps out
- ``decide``       ``decide(practice, message, now)``: commands; ``recover`` at start
- ``answers``      what single Sikka calls came to, as events
- ``confirm``      what an app-level ``GET /writebacks`` list means for a practice
- ``schedule``     ``next_step``: the one thing an actor does next, and its timers
- ``policy``       backoffs, poll gaps, quiet hours, deadlines, token refresh times
- ``listplan``     the app-level list rounds and their fan-out to practices
- ``ratelimit``    the per-practice rate budget (sliding log, lanes, server hints)
- ``reconcile``    matching writebacks whose outcome is unknown against Sikka's list
- ``outcomes``     what a Sikka call came to, as values
- ``sikka_parse``  Sikka's HTTP answers parsed and classified into outcomes
- ``operations``   the six writeback operations, payload validation, Sikka requests
- ``onboarding``   ``authorized_practices`` as commands for each practice
- ``leases``       practice ownership across supervisors (rendezvous hashing, margins)
- ``alerting``     which alerts hold, folded into the alert table
- ``slotting``     open appointment slots from schedules and bookings
- ``timezones``    Windows zone names to IANA
- ``figures``      small statistics (percentiles)
"""
