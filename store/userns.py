"""``python -m store.userns COMMAND [ARGS...]``: run COMMAND in a user namespace of its own, where
this process's uid and gid appear as ``nobody``/``nogroup``. Linux.

PostgreSQL refuses to run as root. ``store.embedded`` runs ``initdb`` and ``pg_ctl`` (and so the
server they start) through this when it runs as root: inside the namespace the server is not
root and holds no capability outside it, yet it owns the data directory, since the kernel checks
the files' real owner (root) against its real uid (root). Nothing needs another OS user, or a
directory opened to one. A fresh process of its own (not a ``preexec_fn``: the caller may run
threads), it enters the namespace and ``exec``s the command.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import sys

CLONE_NEWUSER = 0x10000000


def enter() -> None:
    """Move this process into a new user namespace: its uid and gid map to ``nobody``'s there."""
    uid, gid = os.geteuid(), os.getegid()
    inside = pwd.getpwnam("nobody")
    if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"cannot create a user namespace: {os.strerror(code)}")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{inside.pw_uid} {uid} 1"),
                       ("gid_map", f"{inside.pw_gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def main(argv: list[str]) -> None:
    try:
        enter()
    except OSError as exc:
        print(f"store.userns: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(126)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
