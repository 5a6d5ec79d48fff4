"""The process's limit on open files, raised at start.

Every connection on the admin listeners, every database and Sikka connection is a file
descriptor. systemd's default soft limit (1024) is below what two listeners at
``SIKKA_MAX_CONNECTIONS`` each plus the pools need, so ``raise_open_files`` lifts the soft limit
to the hard one (``LimitNOFILE=`` in the unit sets both) and answers whether it is enough:
``needed_open_files`` counts both listeners full, the pools and a reserve.
"""

from __future__ import annotations

import resource

RESERVE = 256  # database pools, the Sikka HTTP client's connections, log and state files
CEILING = 1 << 20  # a hard limit of "unlimited" is not a soft limit the kernel accepts


def needed_open_files(max_connections: int, listeners: int) -> int:
    return max_connections * listeners + RESERVE


def raise_open_files() -> int:
    """Set the soft ``RLIMIT_NOFILE`` to the hard one; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = CEILING if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target
