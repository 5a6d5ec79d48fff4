"""The embedded server keeps every directory's mode: the data dir is created 0700 with
everything under it private (directories 0700, files 0600), and no directory above it (nor
any of the wheel's) changes mode, before, while and after the server runs. The test suite runs
as root here, as CI does: the server then runs in a user namespace of its own (``store.userns``)
instead of pgserver's ``pgserver`` user and opened parents.

Regression: as root, pgserver made a 0700 home 0755 (another user could read a private file in
it), and ``SIKKA_DATA_DIR`` and its ``run/`` ended up 0755.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from store import embedded


def modes_above(path: Path) -> dict[Path, int]:
    """The mode of every directory from ``path``'s parent up to ``/``."""
    out = {}
    for parent in path.resolve().parents:
        out[parent] = stat.S_IMODE(parent.lstat().st_mode)
    return out


def loose_entries(root: Path) -> list[tuple[Path, str]]:
    """Entries under ``root`` (itself included) more open than 0700 directories / 0600 files."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode) and stat.S_IMODE(mode) != 0o700:
            found.append((path, oct(stat.S_IMODE(mode))))
        elif stat.S_ISREG(mode) and stat.S_IMODE(mode) != 0o600:
            found.append((path, oct(stat.S_IMODE(mode))))
        elif stat.S_ISSOCK(mode) and stat.S_IMODE(mode) & 0o077:
            found.append((path, oct(stat.S_IMODE(mode))))
    return found


@pytest.fixture
def private_home(tmp_path):
    """A 0700 "home" with a private file, and a data dir two levels below it that does not exist."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "diary.txt").write_text("private")
    os.chmod(home / "diary.txt", 0o600)
    (home / "projects").mkdir(mode=0o750)
    return home, home / "projects" / "sikka" / "data"


def test_no_directory_above_the_data_dir_changes_mode_and_everything_under_it_is_private(private_home):
    home, data_dir = private_home
    existing = data_dir.parent  # its parent, "projects", is the deepest directory that exists
    above = modes_above(existing)
    wheel = modes_above(embedded.binaries() / "postgres")
    url = embedded.start(data_dir)
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert modes_above(existing) == above
        assert stat.S_IMODE(existing.stat().st_mode) == 0o700  # created with the data dir: private
        assert loose_entries(data_dir) == []
        assert stat.S_IMODE(home.stat().st_mode) == 0o700 and stat.S_IMODE((home / "diary.txt").stat().st_mode) == 0o600
    finally:
        embedded.stop_if_last()
    assert modes_above(existing) == above
    assert modes_above(embedded.binaries() / "postgres") == wheel
    assert loose_entries(data_dir) == []
    if os.geteuid() == 0:
        assert all(p.lstat().st_uid == 0 for p in [data_dir, *data_dir.rglob("*")])  # no other OS user


@pytest.mark.skipif(os.geteuid() != 0, reason="a data dir of pgserver's own user exists only where root ran it")
def test_a_data_dir_that_pgserver_gave_its_own_user_comes_back_to_root(private_home):
    _, data_dir = private_home
    url = embedded.start(data_dir)
    embedded.stop_if_last()
    for path in [data_dir / "pg", *(data_dir / "pg").rglob("*")]:
        os.lchown(path, 65534, 65534)  # as pgserver's chown to its "pgserver" user left it
    url = embedded.start(data_dir)
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        embedded.stop_if_last()
    assert (data_dir / "pg").stat().st_uid == 0
