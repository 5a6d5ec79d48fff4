"""The time formats Sikka writes, from Unix seconds (always UTC), and the one date format it reads."""

from __future__ import annotations

import datetime as dt
import re
import time
from email.utils import formatdate


def iso_t(ts: float) -> str:  # yyyy-MM-ddTHH:mm:ss, UTC, no zone (Sikka record format)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))


def iso_sp(ts: float) -> str:  # yyyy-MM-dd HH:mm:ss (writeback_status)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def iso_z(ts: float) -> str:  # ISO-8601 UTC with milliseconds (control endpoints)
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_date(ts: float) -> str:  # RFC 1123, GMT
    return formatdate(ts, usegmt=True)


def utc_day(ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date()


def parse_date(s: str) -> dt.date | None:
    """A ``yyyy-mm-dd`` query value as a date; None when it is missing or malformed."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s or ""):
        return None
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        return None
