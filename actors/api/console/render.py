"""HTML out: the console's Jinja2 templates (``templates/``, autoescaped: a value from Sikka or a
caller is text, never markup) and static files (``static/``), shipped in the package, and the
headers every console answer carries.

Every answer has a strict Content-Security-Policy (``CSP``: scripts, styles and images only from
this server's files, no inline script or style, no framing, forms post only here), and
``nosniff``, ``no-referrer`` (console URLs name practices and writebacks) and ``no-store`` (a page
may show patient data) for pages.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources

import jinja2

from actors.api.http import Response

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
HTML = "text/html; charset=utf-8"
STATIC_MAX_AGE_S = 300
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


def when(value: datetime | str | None) -> str:
    """A UTC time as the console prints it: ``2026-03-10 09:00:01Z``."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def relative(value: datetime | str | None, now: datetime) -> str:
    """``in 23 min`` / ``5 s ago`` from ``now``."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    delta = (value - now).total_seconds()
    size = abs(delta)
    if size < 60:
        text = f"{size:.0f} s"
    elif size < 3600:
        text = f"{size / 60:.0f} min"
    elif size < 2 * 86400:
        text = f"{size / 3600:.1f} h"
    else:
        text = f"{size / 86400:.0f} d"
    return f"in {text}" if delta >= 0 else f"{text} ago"


def label(name: str) -> str:
    """A field name as a heading: ``sikka_writeback_id`` → ``sikka writeback id``."""
    return name.replace("_", " ")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("actors.api.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, label=label)
    env.globals.update(relative=relative, timedelta=timedelta)
    return env


ENVIRONMENT = _environment()


def page(status: int, template: str, headers: tuple[tuple[str, str], ...] = (), **context) -> Response:
    """A rendered page with the console's headers."""
    body = ENVIRONMENT.get_template(template).render(**context).encode()
    return Response(status, body, HTML, (*SECURITY_HEADERS, ("Cache-Control", "no-store"), *headers))


def redirect(location: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """303 See Other (after a form: the browser GETs ``location``)."""
    return Response(303, b"", "text/plain", (*SECURITY_HEADERS, ("Location", location), *headers))


def _static_files() -> dict[str, tuple[bytes, str]]:
    files = resources.files("actors.api.console") / "static"
    return {
        f.name: (f.read_bytes(), STATIC_TYPES[suffix])
        for f in files.iterdir()
        if (suffix := "." + f.name.rpartition(".")[2]) in STATIC_TYPES
    }


STATIC = _static_files()


def static(name: str) -> Response | None:
    """One of the package's static files (``None``: no such file)."""
    found = STATIC.get(name)
    if found is None:
        return None
    body, content_type = found
    return Response(200, body, content_type, (*SECURITY_HEADERS, ("Cache-Control", f"max-age={STATIC_MAX_AGE_S}")))
