"""``Secret``: a value that cannot be printed. Pure.

Every secret the program holds (the app key, a practice's secret, request and refresh keys, the
admin API token, the webhook callback key, the Fernet master keys, the Sentry DSN, the Slack
webhook URL) is a ``Secret`` from the moment it is read (a setting, a Sikka answer, a decrypted
row) until the moment it is sent. ``repr``, ``str`` and ``format`` show ``[redacted]``, so an
f-string, a log line, a Sentry event or a traceback that meets one shows nothing; the value
leaves only through ``reveal()``, called where it is sent (an HTTP header or body, Fernet), and
``matches()`` compares a presented credential in constant time (``hmac.compare_digest``).

A plain immutable value (no registry, no I/O): the pure core carries it in its values (e.g.
``outcomes.TokenGrant``), and it is equal to another ``Secret`` of the same value. It cannot be
pickled (that would write the value out).
"""

from __future__ import annotations

import hmac

REDACTED = "[redacted]"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a str, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The value, for the one place that sends it."""
        return self._value

    def matches(self, given: str | bytes) -> bool:
        """Whether ``given`` is this value, compared in constant time."""
        expected = self._value.encode()
        return hmac.compare_digest(given if isinstance(given, bytes) else given.encode(), expected)

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return format(REDACTED, spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Secret is immutable")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict) -> Secret:
        return self

    def __reduce__(self):
        raise TypeError("a Secret cannot be pickled")


def optional(value: str | None) -> Secret | None:
    """``Secret(value)``, or ``None`` for a missing or empty value."""
    return Secret(value) if value else None
