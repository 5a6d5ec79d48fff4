"""Shared fixtures. Real PostgreSQL for store and end-to-end tests: the server named by
``DATABASE_URL`` when set, else one embedded server (pgserver) for the whole test run; every test
gets a database of its own, cloned from a migrated template."""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from store import migrate
from tests.support.supervisor import socket_dir, start, sup  # noqa: F401 (fixtures for every test module)

TEMPLATE = "sikka_template"
_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_admin_url():
    """Connection string to a maintenance database on a server the tests may create databases on."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from store import embedded

    with tempfile.TemporaryDirectory(prefix="sikka-test-") as tmp:
        yield embedded.start(Path(tmp))
        embedded.stop_if_last()


@pytest.fixture(scope="session")
def pg_template(pg_admin_url):
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    with psycopg.connect(make_conninfo(pg_admin_url, dbname=TEMPLATE), autocommit=True) as conn:
        migrate.apply(conn)
    return TEMPLATE


def _fresh_database(pg_admin_url, pg_template):
    """A fresh, migrated database; dropped afterwards."""
    name = f"sikka_test_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield make_conninfo(pg_admin_url, dbname=name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def database_url(pg_admin_url, pg_template):
    """A fresh, migrated database for this test; dropped afterwards."""
    yield from _fresh_database(pg_admin_url, pg_template)


@pytest.fixture(scope="module")
def module_database_url(pg_admin_url, pg_template):
    """A fresh, migrated database shared by a module's tests (one real supervisor for all of them)."""
    yield from _fresh_database(pg_admin_url, pg_template)


@pytest.fixture
def db(database_url):
    from store.db import Database

    database = Database(database_url, max_size=8)
    database.open_sync()
    yield database
    database.close_sync()
