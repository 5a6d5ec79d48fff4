"""Practice time zones: Sikka's Windows zone names mapped to IANA zones. Pure; no I/O.

Sikka gives a practice's zone in ``authorized_practices`` as a Windows name
(``practice_management_system_refresh_date_time_zone``, e.g. ``Eastern Standard Time``).
Quiet hours and "next day" are practice-local (interface section 2), so the core needs an IANA
zone for ``zoneinfo`` (the ``tzdata`` wheel supplies the database where the OS has none).

``zone_for(name)`` accepts, in this order:

1. a Windows name (``tzlocal.windows_tz.win_tz``: generated from CLDR ``windowsZones.xml``,
   territory ``001``, the zone Windows itself means), compared case-insensitively and with a
   leading ``(UTC±hh:mm)`` display prefix removed (importing the table loads the ``tzlocal``
   package, which imports only the standard library and reads nothing at import);
2. an IANA name (``America/New_York``), in case Sikka or an operator already gives one;
3. anything else (missing, blank, unknown): UTC, as interface section 2 says.

``zone_name(name)`` is the IANA key chosen, for status output and logs.
"""

from __future__ import annotations

import re
from datetime import timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

UTC = timezone.utc

_BY_LOWER = {windows.lower(): iana for windows, iana in win_tz.items()}
_DISPLAY_PREFIX = re.compile(r"^\(\s*(?:UTC|GMT)\s*(?:[+-]\d{1,2}(?::\d{2})?)?\s*\)\s*", re.IGNORECASE)


def zone_name(name: str | None) -> str:
    """The IANA key for ``name`` (a Windows or IANA zone name); ``"UTC"`` when unknown."""
    if not name or not name.strip():
        return "UTC"
    raw = _DISPLAY_PREFIX.sub("", name.strip())
    mapped = _BY_LOWER.get(raw.lower())
    if mapped is not None:
        return mapped
    if "/" in raw or raw.upper() in ("UTC", "GMT"):
        try:
            ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            return "UTC"
        return raw
    return "UTC"


@lru_cache(maxsize=512)
def zone_for(name: str | None) -> tzinfo:
    """The ``tzinfo`` for a practice's zone name (Windows or IANA); UTC when unknown."""
    key = zone_name(name)
    if key in ("UTC", "Etc/UTC"):
        return UTC
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return UTC
