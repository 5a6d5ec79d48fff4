"""Pagination: ``offset`` is a page index, filters are kept (never ``pagination.next``), the caller's
limit stops the read, and a failing page fails the whole read."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
import respx
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.outcomes import AuthorizedPractice, ServerError
from actors.core.sikka_parse import writeback_item, writeback_key
from actors.runtime.sikka import MAX_PAGE_SIZE, SikkaClient
from actors.core.secret import Secret
from tests.support.sikka import APP_ID, APP_KEY, APP_SECRET, BASE, KEY, NODE, envelope


def paged(items: list[dict], *, total: int | None = None, header_pages: dict[int, dict] | None = None):
    """A side effect serving ``items`` the way Sikka pages them (offset = page index)."""

    def serve(request: httpx.Request) -> httpx.Response:
        page, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        chunk = items[page * limit : (page + 1) * limit]
        return httpx.Response(
            200,
            json=envelope(chunk, offset=page, limit=limit, total=len(items) if total is None else total),
            headers=(header_pages or {}).get(page, {}),
        )

    return serve


def small_pages(http: httpx.AsyncClient, page_size: int = 2) -> SikkaClient:
    return SikkaClient(http, BASE, APP_ID, APP_SECRET, NODE, page_size=page_size)


APPOINTMENTS = [{"appointment_sr_no": str(n)} for n in range(7)]


async def test_pages_assembled_with_filters_kept_and_offset_a_page_index(http, sikka):
    route = sikka.get("/appointments").mock(side_effect=paged(APPOINTMENTS))

    result = await small_pages(http).appointments(
        KEY, date(2025, 3, 1), date(2025, 3, 31), limit=100, provider_id="DOC1"
    )

    assert result.value == APPOINTMENTS
    params = [call.request.url.params for call in route.calls]
    assert [(p["offset"], p["limit"]) for p in params] == [("0", "2"), ("1", "2"), ("2", "2"), ("3", "2")]
    for p in params:
        assert (p["startdate"], p["enddate"], p["provider_id"]) == ("2025-03-01", "2025-03-31", "DOC1")


async def test_next_link_is_never_followed(http, sikka):
    # Sikka's own links drop the filters and may point anywhere; the client rebuilds its URLs.
    def serve(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["offset"])
        body = envelope(APPOINTMENTS[page * 2 : page * 2 + 2], offset=page, limit=2, total=4)
        body["pagination"]["next"] = "http://api.sikkasoft.com/v4/appointments?offset=38967&limit=1"
        return httpx.Response(200, json=body)

    route = sikka.get("/appointments").mock(side_effect=serve)

    result = await small_pages(http).appointments(KEY, date(2025, 3, 1), date(2025, 3, 2), limit=10)

    assert result.value == APPOINTMENTS[:4]
    assert [c.request.url.params["offset"] for c in route.calls] == ["0", "1"]
    assert all(c.request.url.host == "api.sikkasoft.com" and c.request.url.scheme == "https" for c in route.calls)
    assert all("startdate" in c.request.url.params for c in route.calls)


async def test_stops_at_the_callers_limit(http, sikka):
    route = sikka.get("/appointments").mock(side_effect=paged(APPOINTMENTS))

    result = await small_pages(http).appointments(KEY, date(2025, 3, 1), date(2025, 3, 2), limit=3)

    assert result.value == APPOINTMENTS[:3]
    assert route.call_count == 2


async def test_page_size_is_the_limit_when_smaller(http, sikka):
    route = sikka.get("/providers").mock(side_effect=paged(APPOINTMENTS))

    result = await small_pages(http, page_size=500).providers(KEY, limit=5)

    assert result.value == APPOINTMENTS[:5]
    assert [(c.request.url.params["offset"], c.request.url.params["limit"]) for c in route.calls] == [("0", "5")]


def test_page_size_is_capped_at_sikkas_maximum():
    client = SikkaClient(httpx.AsyncClient(), BASE, APP_ID, APP_KEY, NODE, page_size=100_000)
    assert client._page_size == MAX_PAGE_SIZE


async def test_a_full_last_page_stops_at_total_count(http, sikka):
    route = sikka.get("/providers").mock(side_effect=paged(APPOINTMENTS[:4]))

    result = await small_pages(http).providers(KEY, limit=100)

    assert len(result.value) == 4
    assert route.call_count == 2  # no third request for an empty page


async def test_a_short_page_stops_even_when_total_count_says_more(http, sikka):
    route = sikka.get("/providers").mock(side_effect=paged(APPOINTMENTS[:3], total=10))

    result = await small_pages(http).providers(KEY, limit=100)

    assert len(result.value) == 3
    assert route.call_count == 2


async def test_a_failing_page_fails_the_read(http, sikka):
    sikka.get("/providers").mock(
        side_effect=[
            httpx.Response(200, json=envelope(APPOINTMENTS[:2], limit=2, total=7)),
            httpx.Response(503, json={"error_code": "API2002", "long_message": "overloaded"}),
        ]
    )

    result = await small_pages(http).providers(KEY, limit=100)

    assert result.outcome == ServerError(503, "API2002", "overloaded")


async def test_data_insert_on_any_page_is_reported_and_rate_headers_are_the_latest(http, sikka):
    headers = {0: {"Data-Insert": "in progress", "X-Rate-Limit-Remaining": "249"}, 1: {"X-Rate-Limit-Remaining": "248"}}
    sikka.get("/providers").mock(side_effect=paged(APPOINTMENTS[:3], header_pages=headers))

    result = await small_pages(http).providers(KEY, limit=100)

    assert result.ok and result.data_insert_in_progress
    assert result.rate.remaining == 248


async def test_authorized_practices_reads_all_pages_with_show_all(http, sikka):
    items = [
        {"office_id": f"D{n}", "secret_key": f"s{n}", "practice_id": "1", "practice_name": f"P{n}",
         "practice_management_system_refresh_date_time_zone": "Eastern Standard Time" if n else ""}
        for n in range(3)
    ]
    route = sikka.get("/authorized_practices").mock(side_effect=paged(items))

    result = await small_pages(http).authorized_practices()

    assert [p.office_id for p in result.value] == ["D0", "D1", "D2"]
    assert result.value[1] == AuthorizedPractice(
        office_id="D1", secret_key=Secret("s1"), practice_name="P1", practice_id="1", time_zone="Eastern Standard Time"
    )
    assert result.value[0].time_zone is None
    assert all(c.request.url.params["show"] == "all" for c in route.calls)
    assert route.call_count == 2


async def test_authorized_practice_without_secret_is_an_unparseable_answer(client, sikka):
    sikka.get("/authorized_practices").mock(return_value=httpx.Response(200, json=envelope([{"office_id": "D1"}])))

    assert (await client.authorized_practices()).outcome == ServerError(200, message="unparseable body")


async def test_writebacks_page_is_one_call_for_one_page_of_sikkas_items(http, sikka):
    """``GET /writebacks`` pages are read one at a time (each paid for on the app budget):
    ``offset`` is the page index, 5,000 items a page unless told; items come as Sikka sent them."""
    items = [{"id": str(n), "office_id": "D1", "method": "POST", "api_name": "appointment", "result": "pending",
              "api_request_body": f"request_key=x***&patient_id={n}"} for n in range(5)]
    route = sikka.get("/writebacks").mock(side_effect=paged(items))

    result = await small_pages(http).writebacks_page(date(2025, 3, 1), date(2025, 3, 8), 1, limit=2)

    assert [writeback_key(w).id for w in result.value.items] == ["2", "3"] and result.value.total == 5
    assert writeback_item(result.value.items[0]).request_body == {"patient_id": "2"}  # decoded only when needed
    assert route.call_count == 1
    params = route.calls.last.request.url.params
    asked = (params["offset"], params["limit"], params["startdate"], params["enddate"])
    assert asked == ("1", "2", "2025-03-01", "2025-03-08")
    await small_pages(http).writebacks_page(date(2025, 3, 1), date(2025, 3, 8), 0)
    assert route.calls.last.request.url.params["limit"] == "5000"  # the licence maximum, whatever page_size


@pytest.mark.parametrize(("start", "end"), [(date(2025, 3, 1), date(2025, 3, 9)), (date(2025, 3, 2), date(2025, 3, 1))])
async def test_writebacks_range_over_7_days_is_refused_before_sending(client, sikka, start, end):
    route = sikka.get("/writebacks")

    with pytest.raises(ValueError):
        await client.writebacks_page(start, end, 0)
    with pytest.raises(ValueError):
        await client.writebacks_page(date(2025, 3, 1), date(2025, 3, 2), 0, limit=5001)

    assert route.call_count == 0


@settings(max_examples=40, deadline=None)
@given(total=st.integers(0, 30), page_size=st.integers(1, 7), limit=st.integers(1, 40))
def test_any_total_page_size_and_limit(total, page_size, limit):
    items = [{"n": str(n)} for n in range(total)]

    async def scenario() -> tuple[list, int]:
        async with httpx.AsyncClient() as http:
            with respx.mock(base_url=BASE) as sikka:
                route = sikka.get("/providers").mock(side_effect=paged(items))
                result = await small_pages(http, page_size).providers(KEY, limit=limit)
                return result.value, route.call_count

    value, calls = trio.run(scenario)

    per_page = min(page_size, limit)
    wanted = min(total, limit)
    assert value == items[:wanted]
    assert calls == max(1, -(-wanted // per_page))  # never a page more than needed
