"""Watching the supervisor: what holds, what it costs, who is told.

- ``monitor``   the task that evaluates the alerts (``actors.core.alerting``) every 5 s
- ``metrics``   Prometheus metrics in a registry of their own (``GET /metrics``)
- ``slack``     alert onsets and clearings to a Slack webhook, bounded and rate-limited
- ``tracking``  Sentry for crashes and handler errors, scrubbed like the logs
- ``looplag``   the event loop's lag, for the metrics and the benchmarks
"""
