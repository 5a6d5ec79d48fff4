from __future__ import annotations

import httpx
import pytest
import respx

from actors.runtime.sikka import SikkaClient
from tests.support.sikka import APP_ID, APP_SECRET, BASE, NODE


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> SikkaClient:
    return SikkaClient(http, BASE, APP_ID, APP_SECRET, NODE)


@pytest.fixture
def sikka():
    """A respx router standing in for Sikka at ``BASE``."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router
