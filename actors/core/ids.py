"""What an id looks like: the one rule for office ids and writeback ids, wherever one arrives
(the admin API's paths and query, the command line). Pure.

An office id is 1 to 64 letters, digits, ``_`` or ``-`` (Sikka's are ``D`` and digits); a
writeback id is a UUID in its canonical form (lower-case hex, hyphenated), as the supervisor
makes them. Anything else is not an id of ours: the API answers 404 (or 400 for a query
parameter) without asking the database, the CLI exits 2 without sending anything.
"""

from __future__ import annotations

import re

OFFICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
WRITEBACK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_office_id(value: str) -> bool:
    return OFFICE_ID.fullmatch(value) is not None


def is_writeback_id(value: str) -> bool:
    return WRITEBACK_ID.fullmatch(value) is not None
