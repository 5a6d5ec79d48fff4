"""The control endpoints outside ``/v4`` (interface.md section 5): stats, ground truth, the request
timeline, and the fault set.

Design: ``Control`` reads the shared ``SimState`` and the writeback book, and changes only the
fault set. ``set_faults`` merges a JSON object into ``SimState.faults`` (``null`` removes one
fault, ``{}`` clears all); the one-shot faults act at once (``expire_tokens`` marks every key
issued so far through ``Keys.expire_all``) or on the next request (``throttle``), and bringing a
practice's SPU back online releases the writebacks it held. The other faults are read where they
act: ``error_rate``, ``throttle``, ``rate_limit`` and ``latency_ms`` in ``sim/simulator.py``,
``drop_after_accept_rate`` in ``sim/writebacks.py``, ``revoke`` and ``spu_offline`` through
``SimState.authorized`` and ``SimState.offline``.
"""

from __future__ import annotations

import msgspec

from sim.data import Appointment, Patient
from sim.keys import Keys
from sim.responses import Response, json_response
from sim.state import SimState
from sim.times import iso_z
from sim.writebacks import Writebacks


class Control:
    """``/_sim/*`` (see the module docstring)."""

    def __init__(self, state: SimState, keys: Keys, writebacks: Writebacks):
        self.state, self.keys, self.writebacks = state, keys, writebacks

    def stats(self) -> dict:
        s, a = self.state, self.state.app_meter
        return {
            "requests": s.requests,
            "app": {"requests": a.requests, "status_429": a.status_429, "max_in_any_60s": a.max_in_any_60s},
            "practices": {oid: s.practice(oid).stats() for oid in s.office_ids()},
        }

    def handle(self, method: str, path: str, body: bytes, now: float) -> Response:
        segs = [s for s in path.split("/") if s][1:]
        if method == "GET" and segs == ["stats"]:
            return json_response(self.stats())
        if segs == ["faults"]:
            if method == "GET":
                return json_response(self.state.faults)
            if method == "POST":
                try:
                    self.set_faults(msgspec.json.decode(body or b"{}"), now)
                except (msgspec.DecodeError, ValueError, TypeError) as e:
                    return json_response({"error": str(e)}, 400)
                return json_response(self.state.faults)
        if method == "GET" and len(segs) == 3 and segs[0] == "practices":
            found = self._practice(segs[1], segs[2])
            if found is not None:
                return found
        return json_response({"error": f"no control endpoint {method} {path}"}, 404)

    def _practice(self, office_id: str, what: str) -> Response | None:
        """A practice's ground truth (appointments, patients) or request timeline; None for another view."""
        ps = self.state.practice(office_id)
        if ps is None:
            return json_response({"error": f"unknown office {office_id}"}, 404)
        if what == "appointments":
            return json_response({"items": [_truth(a, Appointment) for a in self.state.data(ps).appointments.values()]})
        if what == "patients":
            return json_response({"items": [_truth(p, Patient) for p in self.state.data(ps).patients.values()]})
        if what == "requests":
            return json_response({"items": [
                {"at": iso_z(at), "method": m, "path": p, "node": n, "status": s} for at, m, p, n, s in ps.timeline]})
        return None

    def set_faults(self, new: dict, now: float) -> None:
        """Merge ``new`` into the fault set (``{}`` clears all); see interface section 5."""
        if not isinstance(new, dict):
            raise ValueError("faults must be a JSON object")
        self.writebacks.settle(now)
        merged = {} if not new else dict(self.state.faults)
        for k, v in new.items():
            if v is None:
                merged.pop(k, None)
            elif k == "expire_tokens":
                if v is True:
                    self.keys.expire_all(now)
            else:
                merged[k] = _fault_value(k, v, merged)
        self.state.faults = merged
        self.writebacks.release(now)
        self.writebacks.settle(now)


def _fault_value(k: str, v, merged: dict):
    """The checked value of fault ``k`` (merged into the set as it stands)."""
    if k in ("error_rate", "drop_after_accept_rate"):
        if not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise ValueError(f"{k} must be a number in [0, 1]")
        return float(v)
    if k == "latency_ms":
        lo, _, hi = str(v).partition(":")
        return (float(lo), float(hi or lo))
    if k in ("spu_offline", "revoke"):
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ValueError(f"{k} must be a list of office ids")
        return list(v)
    if k == "rate_limit":
        if not (isinstance(v, int) or (isinstance(v, dict) and all(isinstance(x, int) for x in v.values()))):
            raise ValueError("rate_limit must be an integer or {office_id: integer}")
        return v
    if k == "throttle":
        if not isinstance(v, dict) or not all(isinstance(x, (int, float)) for x in v.values()):
            raise ValueError("throttle must be {office_id: reset_seconds}")
        return {**merged.get(k, {}), **{o: int(s) for o, s in v.items()}}
    raise ValueError(f"unknown fault {k!r}")


def _truth(row, cls) -> dict:
    out = {f: getattr(row, f) for f in cls.__struct_fields__ if f not in ("visible_at", "made_date")}
    if out.get("source") == "seed" and len(out.get("created_at", "")) == 10:
        out["created_at"] = f"{out['created_at']}T00:00:00Z"
    return out

