"""The process around the supervisor.

- ``config``    settings from the environment, validated once at start
- ``logs``      structlog lines on stdout, JSON by default, with redaction
- ``systemd``   sd_notify and the watchdog
- ``gcpolicy``  the garbage-collector policy for thousands of long-lived actors
- ``gil``       the event loop's share of the GIL against busy worker threads
"""
