"""The data directory (``SIKKA_DATA_DIR``): private from its creation.

``prepare`` creates it when it is missing, with any missing parents, every one mode 0700 (under
umask 0077, so nothing is ever more open than that, even for a moment); an existing directory
keeps its mode, and no directory above it is touched. What the program puts in it is private
too: the key file 0600, the embedded server's ``pg/`` 0700 with 0600 files (PostgreSQL's own
modes), the admin socket 0600 (0660 with ``SIKKA_ADMIN_GROUP``). A path that cannot be a
directory is a ``ConfigError``: one line naming the setting, and exit status 2.
"""

from __future__ import annotations

import os
from pathlib import Path

from actors.process.config import ConfigError

PRIVATE = 0o700


def prepare(path: Path) -> Path:
    """``path``, created private if missing (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        return path
    old_umask = os.umask(0o077)
    try:
        path.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"SIKKA_DATA_DIR: cannot create {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    return path
