"""Every outcome class, transport failures before and after a writeback was sent, headers sent."""

from __future__ import annotations

import gzip
import importlib.metadata
import json
from datetime import date

import httpx
import pytest
import structlog
import trio

from actors.core.outcomes import (
    DailyQuota,
    ExpiredKey,
    InvalidKey,
    Ok,
    RateHeaders,
    RateLimited,
    Rejected,
    ServerError,
    SpuOffline,
    TransportFailure,
    Unauthorized,
    Unknown,
    WritebackAck,
)
from actors.core.sikka_parse import http_date, rate_headers
from actors.runtime.sikka import SikkaClient, user_agent
from tests.support.sikka import APP_ID, APP_KEY, APP_SECRET, BASE, BOOKING, KEY, NODE, REQUEST_KEY, envelope

BOOK = dict(BOOKING)


def error(status: int, code: str, long_message: str = "", **extra: str) -> httpx.Response:
    body = {"http_code": str(status), "http_code_desc": "", "error_code": code, "short_message": "", "long_message": long_message}
    return httpx.Response(status, json={**body, **extra})


async def read(client: SikkaClient):
    return await client.providers(KEY)


async def book(client: SikkaClient):
    return await client.submit(KEY, "book_appointment", BOOK)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (error(400, "API1025", "Request key is not valid, it is expired."), ExpiredKey("API1025", "Request key is not valid, it is expired.")),
        (error(400, "API1004", "Requestkey is missing."), InvalidKey("API1004", "Requestkey is missing.")),
        (error(401, "API2003", "ID or key is incorrect."), Unauthorized("API2003", "ID or key is incorrect.")),
        (error(401, "API2004", "You are not authorized to use this API."), Unauthorized("API2004", "You are not authorized to use this API.")),
        (error(401, "API2007", "practice"), Unauthorized("API2007", "practice")),
        (error(429, "API2011", "Data size per practice per day exceeded"), DailyQuota("API2011", "Data size per practice per day exceeded")),
        (error(429, "API2012", "Requests per practice per day exceeded"), DailyQuota("API2012", "Requests per practice per day exceeded")),
        (error(412, "API2017", "Sikka platform utility is offline"), SpuOffline("API2017", "Sikka platform utility is offline")),
        (error(404, "API2009", "The resource you requested does not exist."), Rejected(404, "API2009", "The resource you requested does not exist.")),
        (error(400, "API1026", "One of the parameter is missing or invalid."), Rejected(400, "API1026", "One of the parameter is missing or invalid.")),
        (error(409, "API2013", "taken"), Rejected(409, "API2013", "taken")),
        (error(422, "API2019", "invalid parameters"), Rejected(422, "API2019", "invalid parameters")),
        (httpx.Response(403, text="<html>Forbidden</html>"), Rejected(403, "", "")),
        (error(500, "API2001", "Internal Error."), ServerError(500, "API2001", "Internal Error.")),
        (error(503, "API2002", "overloaded"), ServerError(503, "API2002", "overloaded")),
        (error(504, "API2022", "Gateway Timeout"), ServerError(504, "API2022", "Gateway Timeout")),
        (httpx.Response(502, text="Bad Gateway"), ServerError(502, "", "")),
        (httpx.Response(200, text="<html>not json</html>"), ServerError(200, "", "unparseable body")),
        (httpx.Response(200, json={"unexpected": "object"}), ServerError(200, "", "unparseable body")),
    ],
    ids=lambda v: getattr(v, "status_code", None) or type(v).__name__,
)
async def test_answers_map_to_one_outcome(client, sikka, response, expected):
    sikka.get("/providers").mock(return_value=response)

    result = await read(client)

    assert result.outcome == expected
    assert result.status == response.status_code


async def test_rate_limited_carries_the_window_reset(client, sikka):
    headers = {"X-Rate-Limit-Limit": "250", "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "10"}
    sikka.get("/providers").mock(return_value=httpx.Response(429, headers=headers))  # body undocumented

    result = await read(client)

    assert result.outcome == RateLimited(reset_s=10.0)
    assert result.rate == RateHeaders(limit=250, remaining=0, reset_s=10.0)


def test_rate_headers_any_case_and_unparseable_is_none():
    headers = httpx.Headers({"X-RATE-LIMIT-LIMIT": " 250 ", "x-rate-limit-remaining": "many", "X-Rate-Limit-Reset": "12.5"})
    assert rate_headers(headers) == RateHeaders(limit=250, remaining=None, reset_s=12.5)
    assert rate_headers(httpx.Headers({"x-rate-limit-reset": "nan"})) == RateHeaders()
    assert http_date("not a date") is None and http_date(None) is None


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError, "connect"),
        (httpx.ConnectTimeout, "connect"),
        (httpx.PoolTimeout, "connect"),
        (httpx.ReadTimeout, "timeout"),
        (httpx.WriteTimeout, "timeout"),
        (httpx.ReadError, "reset"),
        (httpx.RemoteProtocolError, "protocol"),
    ],
)
async def test_transport_failures_on_reads(client, sikka, exc, kind):
    sikka.get("/providers").mock(side_effect=exc)

    result = await read(client)

    assert result.outcome == TransportFailure(kind=kind, message=exc.__name__)
    assert result.status is None


@pytest.mark.parametrize("exc", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_writeback_that_never_connected_is_a_transport_failure(client, sikka, exc):
    sikka.post("/appointment").mock(side_effect=exc)

    result = await book(client)

    assert result.outcome == TransportFailure(kind="connect", message=exc.__name__)


@pytest.mark.parametrize(
    ("effect", "expected"),
    [
        (httpx.ReadTimeout, Unknown(reason="timeout")),
        (httpx.WriteTimeout, Unknown(reason="timeout")),
        (httpx.ReadError, Unknown(reason="reset")),
        (httpx.RemoteProtocolError, Unknown(reason="protocol")),
        (error(500, "API2001"), Unknown(reason="server_error", status=500)),
        (error(503, "API2002"), Unknown(reason="server_error", status=503)),
        (httpx.Response(502), Unknown(reason="server_error", status=502)),
        (httpx.Response(201, text="Created"), Unknown(reason="unparseable", status=201)),
        (httpx.Response(200, json={"error_code": "API0007", "long_message": "Invalid provider id"}), Unknown(reason="unparseable", status=200)),
    ],
    ids=lambda v: getattr(v, "__name__", None) or str(getattr(v, "status_code", v)),
)
async def test_writeback_sent_without_a_usable_answer_is_unknown(client, sikka, effect, expected):
    route = sikka.post("/appointment")
    if isinstance(effect, httpx.Response):
        route.mock(return_value=effect)
    else:
        route.mock(side_effect=effect)

    result = await book(client)

    assert result.outcome == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (error(429, "", ""), RateLimited()),
        (error(429, "API2012"), DailyQuota("API2012")),
        (error(412, "API2017"), SpuOffline("API2017")),
        (error(400, "API1025"), ExpiredKey("API1025")),
        (error(401, "API2007"), Unauthorized("API2007")),
        (error(400, "API1020", "One of the parameter is missing."), Rejected(400, "API1020", "One of the parameter is missing.")),
    ],
)
async def test_writeback_answered_before_acceptance_keeps_its_class(client, sikka, response, expected):
    sikka.post("/appointment").mock(return_value=response)

    assert (await book(client)).outcome == expected


@pytest.mark.parametrize("status", [200, 201])
async def test_acknowledgement_labelled_text_html_is_json(client, sikka, status):
    body = json.dumps(
        {
            "http_code": str(status),
            "error_code": "API2016",
            "long_message": "Id:275495",
            "more_information": "https://api.sikkasoft.com/v4/writeback_status?id=275495",
        }
    )
    sikka.post("/appointment").mock(
        return_value=httpx.Response(status, content=body.encode(), headers={"Content-Type": "text/html; charset=UTF-8"})
    )

    result = await book(client)

    assert result.outcome == Ok(WritebackAck(sikka_writeback_id="275495", code="API2016"))


async def test_acknowledgement_id_from_more_information_when_long_message_lacks_it(client, sikka):
    body = {"error_code": "API2016", "long_message": "", "more_information": "https://api.sikkasoft.com/v4/writeback_status?id=426408"}
    sikka.post("/appointment").mock(return_value=httpx.Response(201, json=body))

    assert (await book(client)).value == WritebackAck(sikka_writeback_id="426408", code="API2016")


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(204),
        httpx.Response(200, content=b""),
        httpx.Response(200, json={"http_code": "204", "error_code": "API2005", "short_message": "No content found"}),
        httpx.Response(200, json=envelope([], total=0)),
    ],
    ids=["204", "empty-body", "API2005", "no-items"],
)
async def test_no_content_on_a_list_read_is_an_empty_list(client, sikka, response):
    sikka.get("/providers").mock(return_value=response)

    assert (await read(client)).outcome == Ok([])


async def test_no_content_on_a_flat_read_is_a_server_error(client, sikka):
    sikka.get("/request_key_info").mock(return_value=httpx.Response(204))

    assert (await client.request_key_info(KEY)).outcome == ServerError(204, message="unparseable body")


async def test_json_parsed_whatever_the_content_type_and_gzip_decoded(client, sikka):
    raw = gzip.compress(json.dumps(envelope([{"provider_id": "VLP"}])).encode())
    sikka.get("/providers").mock(
        return_value=httpx.Response(200, content=raw, headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"})
    )

    assert (await read(client)).value == [{"provider_id": "VLP"}]


async def test_data_insert_in_progress_is_reported(client, sikka):
    sikka.get("/providers").mock(return_value=httpx.Response(200, json=envelope([]), headers={"data-insert": "In Progress"}))

    assert (await read(client)).data_insert_in_progress


async def test_request_headers(client, sikka):
    sikka.get("/providers").mock(return_value=httpx.Response(200, json=envelope([])))
    sikka.get("/authorized_practices").mock(return_value=httpx.Response(200, json=envelope([])))
    sikka.get("/data_sync_status").mock(return_value=httpx.Response(200, json=envelope([])))

    await read(client)
    await client.authorized_practices()
    await client.data_sync_status()

    practice_call, *app_calls = [call.request for call in sikka.calls]
    version = importlib.metadata.version("sikka-supervisor")
    for request in (practice_call, *app_calls):
        assert request.headers["User-Agent"] == f"sikka-supervisor/{version} node={NODE}"
        assert request.headers["Accept-Encoding"] == "gzip"
    assert practice_call.headers["Request-Key"] == REQUEST_KEY
    assert "App-Key" not in practice_call.headers and "App-Id" not in practice_call.headers
    for request in app_calls:
        assert (request.headers["App-Id"], request.headers["App-Key"]) == (APP_ID, APP_KEY)
        assert "Request-Key" not in request.headers
    assert app_calls[0].url.params["show"] == "all"


def test_user_agent_version_falls_back_to_0(monkeypatch):
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert user_agent("n7") == "sikka-supervisor/0 node=n7"


async def test_one_shared_async_client_for_every_practice(http, sikka):
    client = SikkaClient(http, BASE, APP_ID, APP_SECRET, NODE)
    sikka.get("/providers").mock(return_value=httpx.Response(200, json=envelope([])))

    await client.providers("key-of-practice-a")
    await client.providers("key-of-practice-b")

    assert client._http is http  # the client never makes its own
    assert [c.request.headers["Request-Key"] for c in sikka.calls] == ["key-of-practice-a", "key-of-practice-b"]


async def test_cancellation_is_never_swallowed(client, sikka, autojump_clock):
    async def never_answers(request: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()

    sikka.post("/appointment").mock(side_effect=never_answers)
    returned = False

    with trio.move_on_after(30) as scope:
        await book(client)
        returned = True

    assert scope.cancelled_caught and not returned


async def test_secrets_and_query_values_never_reach_the_log(client, sikka):
    sikka.post("/request_key").mock(return_value=error(400, "API1020"))
    sikka.get("/patients").mock(return_value=httpx.Response(200, json=envelope([])))
    sikka.get("/writebacks").mock(return_value=httpx.Response(200, json=envelope([])))
    sikka.delete("/refresh_key").mock(return_value=httpx.Response(200, json={}))

    with structlog.testing.capture_logs() as logs:
        await client.issue_request_key("D20006", "office-secret-key")
        await client.refresh_request_key("the-refresh-key")
        await client.search_patients(KEY, "Jane Doe")
        await client.search_patients(KEY, "555-867-5309")
        await client.writebacks_page(date(2025, 3, 1), date(2025, 3, 7), 0)
        await client.revoke_refresh_key("the-refresh-key")

    text = repr(logs) + repr(client)
    assert logs, "each call logs one line"
    for secret in (APP_KEY, REQUEST_KEY, "office-secret-key", "the-refresh-key", "Jane", "5558675309", "2025-03-01"):
        assert secret not in text


def test_app_credentials_are_required():
    http = httpx.AsyncClient()
    with pytest.raises(ValueError):
        SikkaClient(http, BASE, "", APP_SECRET, NODE)
    with pytest.raises(ValueError):
        SikkaClient(http, BASE, APP_ID, "", NODE)
