"""The web console: practices, writebacks and each writeback's history, in a browser (``/ui/``).

Served by the supervisor itself, on the admin socket and on ``SIKKA_HTTP_LISTEN``, through the
one connection loop (``actors.api.http``); ``sikka-supervisor console`` (``actors.cli.console``)
serves it on a loopback port by forwarding to the admin socket.

- ``app``: the routes, who may see a page (socket peer, session cookie, API token), the CSRF
  check of every posted form, and ``mount`` (``/ui/`` to the console, the rest to the admin API);
- ``pages``: each page from the admin API's answers (called in process) and the event log;
- ``timeline``: a writeback's events as rows with the state after each (pure);
- ``session``: signed expiring session cookies, CSRF tokens, one-time login tokens, and the
  listener's head check for ``/ui/`` (``Gate``);
- ``rates``: each practice's rate use sampled each minute, for "over the last hour";
- ``render``: the Jinja2 templates (``templates/``, autoescaped), the static files (``static/``:
  a stylesheet, a small script for live updates, an icon; no CDN, no build step) and the
  security headers (a strict Content-Security-Policy).
"""
