"""Cron maths for schedules, through croniter (pure Python, so the domain stays pure): when an
expression fires after a moment and the latest time it fired by a moment, in its time zone.

Five fields (minute hour day month weekday) or the `@daily`-style aliases; six fields put
the seconds first (`*/10 * * * * *`: every ten seconds), as Quartz and Spring write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CRON_HELP = (
    "five fields (minute hour day-of-month month day-of-week), six with the seconds first, or "
    f"one of {', '.join(ALIASES)}"
)
_PROBE = datetime(2026, 1, 1, tzinfo=UTC)


def _field(value: str) -> str:
    item = rf"(?:\*|{value}(?:-{value})?)(?:/[1-9][0-9]?)?"
    return rf"{item}(?:,{item})*"


# The shape of an expression Cairn runs, for the API's schema (a client can check it before
# sending); the rule itself is cron_fault, which also refuses one that never fires (31 Feb).
MINUTE, HOUR = _field("[0-5]?[0-9]"), _field("(?:[01]?[0-9]|2[0-3])")
DAY, MONTH, WEEKDAY = _field("(?:0?[1-9]|[12][0-9]|3[01])"), _field("(?:0?[1-9]|1[0-2])"), _field(
    "[0-7]")  # fmt: skip
CRON_PATTERN = (rf"^(?:@(?:{'|'.join(a[1:] for a in ALIASES)})|(?:{MINUTE} )?{MINUTE} {HOUR} "
                rf"{DAY} {MONTH} {WEEKDAY})$")  # fmt: skip


def _iterator(expr: str, tz: str, start: datetime) -> croniter:
    fields = expr.split()
    local = start.astimezone(ZoneInfo(tz))
    return croniter(" ".join(fields), local, second_at_beginning=len(fields) == 6)


def cron_fault(expr: str) -> str:
    """Why `expr` is not a cron expression Cairn runs, or ''."""
    fields = expr.split()
    if len(fields) == 1 and fields[0] in ALIASES:
        return ""
    if len(fields) not in (5, 6):
        return f"has {len(fields)} fields; a cron expression has {CRON_HELP}"
    try:
        _iterator(expr, "UTC", _PROBE).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as e:
        return f"is not a cron expression ({e}); it has {CRON_HELP}"
    return ""


def timezone_fault(name: str) -> str:
    """Why `name` is not an IANA time zone, or ''."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "is not an IANA time zone name (such as UTC or Europe/Berlin)"
    return ""


def next_after(expr: str, tz: str, after: datetime) -> datetime:
    """The first time `expr` fires strictly after `after`, in UTC."""
    found: datetime = _iterator(expr, tz, after).get_next(datetime)
    return found.astimezone(UTC)


def latest_by(expr: str, tz: str, now: datetime) -> datetime:
    """The latest time `expr` fired at or before `now` (to the second), in UTC."""
    start = now.replace(microsecond=0) + timedelta(seconds=1)
    found: datetime = _iterator(expr, tz, start).get_prev(datetime)
    return found.astimezone(UTC)
