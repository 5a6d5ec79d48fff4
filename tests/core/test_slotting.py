"""Computed open slots: schedule intervals, holidays, 12-hour times, provider schedules, bookings."""

from __future__ import annotations

from datetime import date, time

from actors.core.slotting import open_slots, parse_time, working_intervals

MONDAY = date(2025, 3, 17)


def schedule(resource_type="Practice", resource_id="1", **days):
    item = {"resource_type": resource_type, "resource_id": resource_id}
    item.update(days)
    return item


PRACTICE = schedule(monday_start_1="08:00", monday_end_1="12:00", monday_start_2="1:00 PM", monday_end_2="3:00 PM",
                    sunday_holiday="True")


def test_times_in_both_formats():
    assert parse_time("08:30") == time(8, 30) and parse_time("1:00 PM") == time(13, 0)
    assert parse_time("12:15 am") == time(0, 15) and parse_time("25:00") is None and parse_time("") is None


def test_intervals_and_holidays():
    assert working_intervals(PRACTICE, MONDAY) == [(time(8), time(12)), (time(13), time(15))]
    assert working_intervals(PRACTICE, date(2025, 3, 16)) == []  # Sunday holiday


def test_bookings_block_overlapping_slots():
    """The peer's case: bookings at 08:00 and 08:30 leave 09:00 as the first slot."""
    booked = [
        {"provider_id": "DOC1", "date": "2025-03-17T00:00:00", "time": "08:00", "length": "30"},
        {"provider_id": "DOC1", "date": "2025-03-17T00:00:00", "time": "08:30", "length": "30"},
        {"provider_id": "DOC2", "date": "2025-03-17T00:00:00", "time": "09:00", "length": "60"},
    ]
    slots = open_slots(MONDAY, ["DOC1"], [PRACTICE], booked)
    times = [s["time"] for s in slots]
    assert times[0] == "09:00" and "08:00" not in times and "08:30" not in times
    assert times[-1] == "14:30" and "12:00" not in times  # lunch is not a working interval
    assert len(times) == 6 + 4  # 09:00–12:00 and 13:00–15:00


def test_provider_schedule_wins_and_closed_day_is_empty():
    own = schedule("Provider", "DOC1", monday_start_1="10:00", monday_end_1="11:00")
    slots = open_slots(MONDAY, ["DOC1", "DOC2"], [PRACTICE, own], [])
    assert [s["time"] for s in slots if s["provider_id"] == "DOC1"] == ["10:00", "10:30"]
    assert len([s for s in slots if s["provider_id"] == "DOC2"]) == 12
    assert open_slots(date(2025, 3, 16), ["DOC1"], [PRACTICE], []) == []
