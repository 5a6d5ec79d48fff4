"""The supervisor's logic: a pure core and the shells around it (trio-style).

::

    actors/core/        PURE: every decision, as functions of (state, message, now) -> values;
                        imports no I/O library, no clock, nothing below
    actors/runtime/     the trio shell that carries the decisions out: practice actors, their
                        supervision, the one commit path, app-level work, ownership, the Sikka
                        HTTP client
    actors/api/         the admin API over HTTP/1.1 (Unix socket and TCP)
    actors/cli/         the ``sikka-supervisor`` commands and the demo
    actors/monitoring/  alerts, metrics, Slack, Sentry, loop lag
    actors/process/     settings, logging, systemd, the GC policy

``supervisor.py`` (the composition root) builds every dependency once and wires them together;
``store/`` holds the event log, projections and encrypted credentials; ``sim/`` is the Sikka
simulator. Imports point down this list (core imports only core); ``tests/test_layout.py`` and
``tests/core/test_purity.py`` keep it so.
"""
