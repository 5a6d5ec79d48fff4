"""The simulator's settings: one ``SimConfig`` field per ``sikka-sim`` flag (interface.md section 5),
plus two knobs only tests and benchmarks set (refresh-key rotation, timeline length)."""

from __future__ import annotations

import msgspec


class SimConfig(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8089
    practices: int = 3
    seed: int = 1
    app_id: str = "sim-app-id"
    app_key: str = "sim-app-key"
    rate_limit: int = 250
    app_rate_limit: int = 250
    daily_quota: int = 0
    token_ttl: float = 86400.0
    writeback_delay: tuple[float, float] = (5.0, 40.0)
    writeback_failure_rate: float = 0.0
    patients_per_practice: int = 50
    appointments_per_practice: int = 100
    refresh_lag: float = 0.0
    webhook_url: str | None = None
    callback_key: str = ""
    rotate_refresh_keys: bool = False  # a refresh grant returns a new refresh key (old one dies)
    timeline_limit: int = 10_000  # newest entries kept per practice
