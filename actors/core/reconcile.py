"""Decoding Sikka's answers about writebacks, and matching unknown outcomes. Pure; no I/O.

What an answer means for one of our writebacks (``Remote.kind``)::

    writeback_status item            GET /writebacks item (result)      kind
    ──────────────────────────────   ─────────────────────────────────  ─────────
    is_completed False, no error     "pending"                          pending
    is_completed True, has_error F   "completed" / "complete" / success completed
    has_error True                   "failed" / "error…"                failed
    status/result mentions "delet"   "deleted"                          deleted
    —                                any other text                     unclear (read the status)

A ``completed`` list item settles a writeback by itself unless we need ``created_id``
(``book_appointment``, ``create_patient``); a ``failed`` one unless its error text is missing
(the list has no error field; ``description`` is used when Sikka fills it). Then one
``writeback_status`` read (the practice's key, one id) gives the detail.

Matching an ``unknown`` writeback (we sent it, no usable answer came) against the list
(``candidates``, then ``assign`` over every unresolved writeback; the verdicts are
``actors.core.confirm``'s): an item is a candidate when it is of the same office, the same HTTP method, the
same api (``operations.api_name_matches``), dated (``command_time``) within the attempt's UTC
date ±1 day (Sikka's time zone is not documented, so a day either side covers any), not already
claimed by another writeback of ours, and its decoded ``api_request_body`` holds every body field
we sent with the same value, plus the path id as ``id``. Then:

    one candidate that no other unresolved writeback of
      ours could also own                                 → found (reconciled with its id)
    several, or one that another unknown could own        → ambiguous (stays unknown, alert)
      (identical requests with as many writes as requests are paired in send order: ``assign``)
    none, list complete for the ±1 day span, and fetched
      at or after attempt + HTTP timeout + lease TTL + 30 s → absent (proven: may be re-sent)
    none otherwise                                        → not_found (check again later)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime, timedelta, timezone

import msgspec

from actors.core.operations import OPERATIONS, SPU_CHECK, PayloadError, api_name_matches, prepare

UTC = timezone.utc

CREATES = frozenset({"book_appointment", "create_patient"})  # need created_id from writeback_status


class Remote(msgspec.Struct, frozen=True, kw_only=True):
    """What Sikka says about one writeback."""

    kind: str  # "pending" | "completed" | "failed" | "deleted" | "unclear"
    created_id: str | None = None
    message: str = ""
    completed_time: str | None = None
    detailed: bool = False  # from writeback_status: created_id and error text are as good as it gets


def _has_delete(*texts: str) -> bool:
    return any("delet" in (t or "").lower() for t in texts)


def decode_status(item) -> Remote:
    """A ``writeback_status`` item (``outcomes.WritebackStatus``)."""
    completed_time = item.completed_time or None
    if _has_delete(item.status, item.result):
        return Remote(kind="deleted", message=item.result, completed_time=completed_time, detailed=True)
    if item.has_error:
        return Remote(
            kind="failed", message=item.result or item.status or "", completed_time=completed_time, detailed=True
        )
    if item.is_completed:
        return Remote(
            kind="completed",
            created_id=item.created_id or None,
            message=item.result,
            completed_time=completed_time,
            detailed=True,
        )
    return Remote(kind="pending", detailed=True)


_COMPLETED = ("completed", "complete", "success", "successful", "done")
_FAILED = ("failed", "failure", "error", "has_error")


def decode_list_item(item) -> Remote:
    """A ``GET /writebacks`` item (``outcomes.WritebackListItem``)."""
    result = (item.result or "").strip().lower()
    completed_time = item.completed_time or None
    if result == "pending" or result == "":
        return Remote(kind="pending")
    if result in _COMPLETED:
        return Remote(kind="completed", completed_time=completed_time)
    if _has_delete(result):
        return Remote(kind="deleted", completed_time=completed_time)
    if result in _FAILED or result.startswith("fail") or result.startswith("error"):
        message = item.description or ("" if result in _FAILED else item.result)
        return Remote(kind="failed", message=message, completed_time=completed_time)
    return Remote(kind="unclear", message=item.result, completed_time=completed_time)


def needs_status_read(operation: str, remote: Remote) -> bool:
    """Whether a final list answer needs a ``writeback_status`` read before we record it."""
    if remote.detailed:
        return False
    if remote.kind == "completed":
        return operation in CREATES
    if remote.kind == "failed":
        return not remote.message
    return remote.kind == "unclear"


# --- matching --------------------------------------------------------------------------------


def expected_fields(operation: str, payload: Mapping[str, object]) -> dict[str, str] | None:
    """The fields a list item's ``api_request_body`` must hold for our request: every body field
    we sent (fixed ones included, ``check_spu`` excepted) plus the path id as ``id``. ``None`` if the payload is unusable."""
    try:
        request = prepare(operation, payload)
    except PayloadError:
        return None
    fields = dict(request.body)
    fields.pop(SPU_CHECK[0], None)  # a transport flag, not part of the change: Sikka may not echo it
    spec = OPERATIONS[operation]
    if spec.path_field:
        fields["id"] = request.path.rsplit("/", 1)[-1]
    return fields


def command_datetime(item) -> datetime | None:
    """Sikka's ``command_time`` to the second, naive (as Sikka writes it; comparable only with
    other items of the same list). ``None`` when missing or unparseable."""
    text = (item.command_time or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace(" ", "T").rstrip("Z")[:19]).replace(tzinfo=None)
    except ValueError:
        return None


def command_date(item) -> date | None:
    when = command_datetime(item)
    if when is not None:
        return when.date()
    text = (item.command_time or "").strip()
    try:
        return date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


def _norm(value: object) -> str:
    return str(value).strip()


def is_candidate(
    operation: str,
    office_id: str,
    expected: Mapping[str, str],
    attempted_at: datetime,
    item,
) -> bool:
    spec = OPERATIONS[operation]
    if item.office_id.strip().lower() != office_id.strip().lower():
        return False
    if item.method.strip().upper() != spec.method:
        return False
    if not api_name_matches(spec.resource, item.api_name):
        return False
    day = command_date(item)
    if day is not None:
        d = attempted_at.astimezone(UTC).date()
        if not (d - timedelta(days=1) <= day <= d + timedelta(days=1)):
            return False
    body = item.request_body
    return all(key in body and _norm(body[key]) == _norm(value) for key, value in expected.items())


def candidates(
    *,
    operation: str,
    office_id: str,
    payload: Mapping[str, object],
    attempted_at: datetime,
    items: Iterable,
    claimed: Collection[str],
) -> list | None:
    """The unclaimed items that could be our request (``None``: the payload is unusable)."""
    expected = expected_fields(operation, payload)
    if expected is None:
        return None
    return [
        item
        for item in items
        if item.id not in claimed and is_candidate(operation, office_id, expected, attempted_at, item)
    ]


AMBIGUOUS = "ambiguous"


def _id_order(sikka_id: str):
    return (0, int(sikka_id), "") if sikka_id.isdigit() else (1, 0, sikka_id)


SendOrder = tuple  # (attempted_at, seq or None): when the attempt began, request order if known


def _send_key(order: SendOrder):
    at, seq = order
    return (at, -1 if seq is None else seq)


def _same_send(a: SendOrder, b: SendOrder) -> bool:
    """Two attempts whose order we cannot tell: the same start and no distinct request order."""
    return a[0] == b[0] and (a[1] is None or b[1] is None or a[1] == b[1])


def _pair(
    group: list[str],
    items: frozenset[str],
    sent: Mapping[str, SendOrder],
    written: Mapping[str, datetime | None],
) -> dict[str, str] | None:
    """Pair identical unresolved writebacks with as many identical Sikka items, in send order.

    Our sends are serialized (one ``submitting`` at a time per practice), so the k-th attempt to
    begin is normally the k-th of these writes Sikka accepted: writebacks by ``sent`` (attempt start,
    then request order), items by ``command_time`` then id when every item has a time (id order
    alone otherwise). ``None`` when two attempts cannot be told apart in time (no faithful
    pairing exists).
    """
    by_send = sorted(group, key=lambda k: _send_key(sent[k]))
    if any(_same_send(sent[a], sent[b]) for a, b in zip(by_send, by_send[1:])):
        return None
    times = [written.get(i) for i in items]
    if all(t is not None for t in times):
        by_write = sorted(items, key=lambda i: (written[i], _id_order(i)))
    else:
        by_write = sorted(items, key=_id_order)
    return dict(zip(by_send, by_write))


def assign(
    claims: Mapping[str, frozenset[str]],
    *,
    sent: Mapping[str, SendOrder] | None = None,
    written: Mapping[str, datetime | None] | None = None,
) -> dict[str, str | None]:
    """Jointly decide which unresolved writeback owns which item.

    ``claims``: each unresolved writeback's candidate item ids. ``sent``: each writeback's
    ``(attempted_at, seq)`` (``seq`` ``None`` when its request order is no longer known, as for
    a late watch); without it, the order of ``claims`` is the send order. ``written``: each
    item's ``command_time`` (``command_datetime``); without it, id order is Sikka's order.

    A writeback gets an item only when nobody else could own it: its only candidate is a
    candidate of no other unresolved writeback. Several unresolved writebacks with exactly the
    same candidates (identical requests) and exactly as many items as writebacks are paired in
    send order (``_pair``): right whenever Sikka accepted them in the order we sent them, the
    normal case with serialized sends (a timed-out request that Sikka took in only after our
    next send would be paired crosswise; the two writes are identical either way). Any other
    overlap, or attempts we cannot order, is ``AMBIGUOUS``. ``None``: no candidate at all.
    """
    keys = list(claims)
    if sent is None:
        sent = {k: (i, i) for i, k in enumerate(keys)}
    written = written or {}
    out: dict[str, str | None] = {}
    for k in keys:
        if k in out:
            continue
        mine = claims[k]
        if not mine:
            out[k] = None
            continue
        rivals = [r for r in keys if r != k and claims[r] & mine]
        if not rivals and len(mine) == 1:
            out[k] = next(iter(mine))
            continue
        if all(claims[r] == mine for r in rivals) and len(rivals) + 1 == len(mine):
            group = [r for r in keys if r == k or r in rivals]
            pairs = _pair(group, mine, sent, written)
            if pairs is not None:
                out.update(pairs)
                continue
            out.update({g: AMBIGUOUS for g in group})
            continue
        out[k] = AMBIGUOUS
    return {k: out[k] for k in keys}
