"""The admin API's conventions (issue 17): the OpenAPI document generated from the code, the
HTTP details (405 with Allow, 401 with WWW-Authenticate, the Bearer scheme in any case, path
ids decoded once, unknown and malformed parameters refused), and offboarding as one state.

The document's own checks need no supervisor; the rest go through a real one in-process
(``sup``/``start``) on the Unix socket and, where the token matters, on TCP.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import httpx
import jsonschema
import msgspec
import trio
from openapi_spec_validator import validate

from actors.api import query, views
from actors.api.admin import Admin
from actors.api.errors import ApiError
from actors.api.http import Request
from actors.api.openapi import openapi_document
from actors.core.operations import FORBIDDEN_PATH_CHARS, OPERATIONS, PATH_ID
from tests.support.processes import free_port
from tests.support.supervisor import booking, check_error, submission

ROUTES = Admin(SimpleNamespace(settings=SimpleNamespace(db_timeout=None)), None, None).routes  # the routes only


def document(bearer: bool = True) -> dict:
    return msgspec.json.decode(msgspec.json.encode(openapi_document(ROUTES, bearer=bearer)))


# --- the document -------------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1_and_names_every_route():
    for bearer in (True, False):
        doc = document(bearer)
        validate(doc)  # OpenAPI 3.1, every $ref resolved
        assert doc["openapi"] == "3.1.0"
        published = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
        assert published == {(r.method, r.path) for r in ROUTES}
    ids = [r.operation_id for r in ROUTES]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_every_query_parameter_with_its_type_bounds_and_default():
    doc = document()

    def parameters(path, method="get"):
        return {p["name"]: p for p in doc["paths"][path][method]["parameters"] if p["in"] == "query"}

    listing = parameters("/practices/{office_id}/writebacks")
    assert listing["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}
    assert listing["state"]["schema"]["items"]["enum"] == sorted(views.WRITEBACK_STATES)
    assert listing["before"]["schema"]["pattern"].startswith("^[0-9a-f]{8}")
    assert parameters("/writebacks/{writeback_id}")["wait"]["schema"] == {
        "type": "number", "minimum": 0, "maximum": 60.0, "default": 0.0}
    assert parameters("/practices/{office_id}/stats")["since"]["schema"]["format"] == "date-time"
    slots = parameters("/practices/{office_id}/available-slots")
    assert slots["date"]["required"] and slots["date"]["schema"]["format"] == "date"
    assert not slots["provider_id"]["required"]
    assert parameters("/practices/{office_id}/patients")["query"]["required"]
    assert set(parameters("/practices/{office_id}/appointments")) == {"startdate", "enddate", "limit"}
    for route in ROUTES:  # every field of every route's query struct, nothing else
        fields = {f.name for f in msgspec.structs.fields(route.query)} if route.query else set()
        assert set(parameters(route.path, route.method.lower())) == fields, route.path
        assert all(p["description"] for p in parameters(route.path, route.method.lower()).values())


def test_bodies_statuses_security_and_media_types():
    doc = document()
    schemas = doc["components"]["schemas"]
    submit = doc["paths"]["/practices/{office_id}/writebacks"]["post"]
    assert set(submit["responses"]) == {"200", "202", "400", "401", "404", "409", "413", "503"}
    assert submit["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Writeback"}
    assert schemas["SubmitBody"]["properties"]["operation"]["enum"] == sorted(OPERATIONS)
    alternatives = submit["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert [a["properties"]["operation"]["const"] for a in alternatives] == list(OPERATIONS)
    book = schemas["book_appointment_payload"]
    assert book["required"] == list(OPERATIONS["book_appointment"].required) and not book["additionalProperties"]
    assert schemas["PracticeStatus"]["properties"]["state"]["enum"] == sorted(views.PRACTICE_STATES)
    assert "offboarded" in schemas["PracticeStatus"]["properties"]["state"]["enum"]
    assert set(schemas["Error"]["required"]) == {"error", "detail", "field"}
    assert doc["components"]["securitySchemes"]["bearer"] == {
        **doc["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"bearer": []}]
    assert submit["responses"]["401"]["headers"]["WWW-Authenticate"]["required"]
    webhook = doc["paths"]["/webhooks/sikka"]["post"]
    assert webhook["security"] == [{"callbackKey": []}] and "401" in webhook["responses"]
    assert set(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    reads = doc["paths"]["/practices/{office_id}/providers"]["get"]["responses"]
    assert {"502", "503", "504"} <= set(reads)
    assert document(bearer=False)["security"] == []  # the Unix socket takes no token
    links = submit["responses"]["202"]["links"]
    assert links["get_writeback"]["parameters"] == {"writeback_id": "$response.body#/writeback_id"}
    assert links["list_writebacks"]["parameters"] == {"office_id": "$response.body#/office_id"}
    assert "offboard" not in links


def test_the_path_id_pattern_is_the_rule_sikka_paths_follow():
    allowed = {chr(c) for c in range(0x21, 0x7F)} - FORBIDDEN_PATH_CHARS
    assert {c for c in map(chr, range(0x300)) if PATH_ID.fullmatch(c)} == allowed - {"."}
    assert not PATH_ID.fullmatch("..") and PATH_ID.fullmatch("...") and not PATH_ID.fullmatch("12\n")


async def test_answers_match_the_published_schemas(sup):
    """The structs the handlers answer are the schemas the document publishes."""
    doc = (await sup.client.get("/openapi.json")).json()
    registry = {"components": doc["components"]}

    def check(answer, ref):
        jsonschema.validate(answer, {"$ref": f"#/components/schemas/{ref}", **registry})

    wb = (await sup.submit("D1000", submission(sup.sim))).json()
    check(wb, "Writeback")
    check((await sup.client.get("/practices")).json(), "Practices")
    check((await sup.client.get("/usage")).json(), "UsageList")
    check((await sup.client.get("/health")).json(), "Health")
    check((await sup.client.get("/practices/D1000/stats")).json(), "Stats")
    check((await sup.client.get("/practices/D1000/providers")).json(), "Items")


# --- HTTP details -------------------------------------------------------------------------------


async def test_405_names_the_allowed_methods(sup):
    r = await sup.client.delete("/health")
    check_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET"
    r = await sup.client.get("/practices/D1000/writebacks/x")
    assert r.status_code == 404
    r = await sup.client.put("/practices/D1000/writebacks")
    check_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, POST"


async def test_path_ids_are_percent_decoded_once(sup):
    r = await sup.client.get("/practices/D%31000")
    assert r.status_code == 200 and r.json()["office_id"] == "D1000"
    check_error(await sup.client.get("/practices/D%2531000"), 404, "unknown_practice")  # %25 is "%": once only
    wid = (await sup.submit("D1000", submission(sup.sim))).json()["writeback_id"]
    encoded = "".join(f"%{ord(c):02x}" for c in wid)
    assert (await sup.client.get(f"/writebacks/{encoded}")).json()["writeback_id"] == wid


async def test_unknown_and_malformed_query_parameters_are_400_naming_them(sup):
    check_error(await sup.client.get("/practices", params={"verbose": "1"}), 400, "bad_parameter", "verbose")
    check_error(await sup.client.get("/practices/D1000/writebacks", params={"limt": "5"}), 400, "bad_parameter",
                "limt")
    check_error(await sup.client.get("/practices/D1000/stats", params={"since": "null"}), 400, "bad_parameter",
                "since")
    check_error(await sup.client.get("/practices/D1000/stats", params={"since": "2026-03-10T00:00:00"}), 400,
                "bad_parameter", "since")  # a time says its zone
    r = await sup.client.get("/practices/D1000/available-slots")  # was 200 [] without its date
    check_error(r, 400, "bad_parameter", "date")
    assert "required" in r.json()["detail"]


async def test_before_must_be_one_of_this_practices_writebacks(sup):
    """Regression: a bad cursor answered 200 with an empty list, as if the list had ended."""
    mine = (await sup.submit("D1000", submission(sup.sim))).json()["writeback_id"]
    other = (await sup.submit("D1001", submission(sup.sim, "D1001"))).json()["writeback_id"]
    for before in ("garbage", str(uuid.uuid4()), other):
        check_error(await sup.client.get("/practices/D1000/writebacks", params={"before": before}), 400,
                    "bad_parameter", "before")
    r = await sup.client.get("/practices/D1000/writebacks", params={"before": mine})
    assert r.status_code == 200 and r.json() == {"writebacks": []}


async def test_bearer_in_any_case_and_www_authenticate_on_401(start):
    port = free_port()
    await start(env={"SIKKA_HTTP_LISTEN": f"127.0.0.1:{port}", "SIKKA_API_TOKEN": "tok-17"})
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as tcp:
        for wrong in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic tok-17"},
                      {"Authorization": "tok-17"}):
            r = await tcp.get("/health", headers=wrong)
            check_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer"
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            assert (await tcp.get("/health", headers={"Authorization": f"{scheme} tok-17"})).status_code == 200
        doc = (await tcp.get("/openapi.json", headers={"Authorization": "Bearer tok-17"})).json()
        assert doc["security"] == [{"bearer": []}]


# --- offboarding is one state -------------------------------------------------------------------


async def test_an_offboarded_practice_answers_404_everywhere_but_its_status_until_named(sup):
    wid = (await sup.submit("D1001", submission(sup.sim, "D1001"))).json()["writeback_id"]
    assert (await sup.writeback(wid, 30)).json()["state"] == "completed"
    r = await sup.client.post("/practices/D1001/offboard")
    assert r.status_code == 200 and r.json()["state"] == "offboarded", r.text
    assert (await sup.client.get("/practices/D1001")).json()["state"] == "offboarded"
    listed = {p["office_id"]: p["state"] for p in (await sup.client.get("/practices")).json()["practices"]}
    assert listed == {"D1000": "active", "D1001": "offboarded"}
    assert (await sup.client.get("/health")).json()["practices"] == 1

    body = {"operation": "book_appointment", "payload": booking(sup.sim, "D1001")}
    for method, path, kw in [
        ("POST", "/practices/D1001/writebacks", {"json": body}),
        ("GET", "/practices/D1001/writebacks", {}),
        ("GET", "/practices/D1001/stats", {}),
        ("GET", "/practices/D1001/providers", {}),
        ("GET", "/practices/D1001/patients", {"params": {"query": "a"}}),
        ("GET", "/practices/D1001/available-slots", {"params": {"date": "2026-03-10"}}),
        ("POST", "/practices/D1001/pause", {}),
        ("POST", "/practices/D1001/resume", {}),
        ("POST", "/practices/D1001/refresh-token", {}),
        ("POST", "/practices/D1001/retry-failed", {}),
        ("POST", "/practices/D1001/offboard", {}),
    ]:
        r = await sup.client.request(method, path, **kw)
        check_error(r, 404, "unknown_practice", what=path)
        assert "onboard --office D1001" in r.json()["detail"]
    assert (await sup.writeback(wid)).json()["state"] == "completed"  # its history stays readable

    report = (await sup.client.post("/onboard")).json()["practices"]
    assert {p["office_id"]: p["action"] for p in report} == {"D1000": "unchanged", "D1001": "offboarded"}
    assert (await sup.client.get("/practices/D1001")).json()["state"] == "offboarded"

    check_error(await sup.client.post("/onboard", json={"office_id": "D9999"}), 404, "unknown_practice",
                "office_id")
    check_error(await sup.client.post("/onboard", json={"office_id": "D1/0"}), 400, "invalid_field", "office_id")
    report = (await sup.client.post("/onboard", json={"office_id": "D1001"})).json()["practices"]
    assert report == [{"office_id": "D1001", "practice_name": sup.sim.practice("D1001").info.name,
                       "action": "registered"}]
    practices = await sup.until_active()
    assert {p["state"] for p in practices} == {"active"}
    assert (await sup.client.get("/health")).json()["practices"] == 2
    assert (await sup.client.get("/practices/D1001/providers")).status_code == 200
    wid = (await sup.submit("D1001", submission(sup.sim, "D1001", 1))).json()["writeback_id"]
    with trio.fail_after(40):
        assert (await sup.writeback(wid, 30)).json()["state"] == "completed"


def test_query_structs_refuse_what_the_document_refuses():
    """The reader is the struct the document publishes: a value outside it is 400 naming it."""
    def read(spec, **values):
        return query.read(Request("GET", "/", {k: v if isinstance(v, list) else [v] for k, v in values.items()},
                                  {}, b"", "tcp"), spec)

    assert read(query.WritebackListQuery, state=["queued", "failed"], limit="7").state == ["queued", "failed"]
    assert read(query.WaitQuery, wait="2.5").wait == 2.5
    for spec, values, field in [
        (query.WaitQuery, {"wait": "61"}, "wait"),
        (query.WaitQuery, {"wait": "nan"}, "wait"),
        (query.WritebackListQuery, {"limit": "²"}, "limit"),
        (query.WritebackListQuery, {"state": ["lost"]}, "state"),
        (query.PatientsQuery, {"query": "   "}, "query"),
        (query.PatientsQuery, {"query": "a\x00b"}, "query"),
        (query.SlotsQuery, {"date": "2026-02-30"}, "date"),
        (query.StatsQuery, {"since": "0001-01-01T00:00:00+23:59"}, "since"),
    ]:
        try:
            read(spec, **values)
        except ApiError as exc:
            assert (exc.status, exc.code, exc.field) == (400, "bad_parameter", field), (values, exc.detail)
        else:
            raise AssertionError(f"{values} accepted")
    try:
        read(query.WritebackListQuery, state=["queued", "lost"])
    except ApiError as exc:  # the detail says what is allowed and which value was not
        assert exc.detail.startswith("state must be writeback states") and "'lost'" in exc.detail, exc.detail
    else:
        raise AssertionError("state=lost accepted")
