"""The simulator tests' fixture: ``api(**config)`` (``tests.support.sim.Api``)."""

from __future__ import annotations

import pytest

from tests.support.sim import Api


@pytest.fixture
def api():
    """``api(**config)`` builds an ``Api``; tests also request ``autojump_clock`` (pytest-trio takes the
    clock from the test's own arguments)."""
    return Api
