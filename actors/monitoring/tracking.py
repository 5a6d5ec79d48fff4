"""Error tracking with Sentry (``SENTRY_DSN``): actor crashes and unexpected errors.

``init`` is called once at start when a DSN is set; ``capture`` is a no-op until then. Crashes
are captured where they are caught (``Supervised.run``, tagged with the practice's office_id)
and handler bugs where the HTTP server answers 500.

Scrubbing: no default integrations (they would add breadcrumbs holding URLs, among them the
Slack webhook's), no local variables in stack frames (a frame may hold a key or a payload
under any name), no request bodies, and a ``before_send`` that passes the whole event through
the log lines' scrubber (``actors.process.logs.redact``: the same secret and payload key names,
and the process's secret values wherever they appear in a string).
"""

from __future__ import annotations

import sentry_sdk
from sentry_sdk.utils import BadDsn

from actors.core.secret import Secret
from actors.process.config import ConfigError
from actors.process.logs import redact


def scrub(event: dict, hint: dict | None = None) -> dict:
    return redact(event)


def init(dsn: Secret, *, release: str, node: str, transport=None) -> None:
    """Start Sentry; a malformed DSN is a ``ConfigError`` (that does not repeat the DSN: it is
    a secret)."""
    try:
        sentry_sdk.init(
            dsn=dsn.reveal(),
            release=f"sikka-supervisor@{release}",
            server_name=node,
            before_send=scrub,
            include_local_variables=False,
            max_request_body_size="never",
            default_integrations=False,
            auto_enabling_integrations=False,
            transport=transport,
        )
    except BadDsn:
        raise ConfigError("SENTRY_DSN is not a valid Sentry DSN") from None


def capture(exc: BaseException, *, office_id: str | None = None) -> None:
    with sentry_sdk.new_scope() as scope:
        if office_id is not None:
            scope.set_tag("office_id", office_id)
        sentry_sdk.capture_exception(exc)
